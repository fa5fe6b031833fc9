"""W3C trace context: continue a valid traceparent, start a trace otherwise."""

from __future__ import annotations

import re

import pytest

from framework.observability.tracing import (
    TraceContext,
    parse_traceparent,
    task_span,
)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
VALID = f"00-{TRACE}-{SPAN}-01"
TRACEPARENT_RE = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")


def test_valid_traceparent_is_continued() -> None:
    tc = TraceContext.from_headers({"traceparent": VALID, "tracestate": "congo=t61rcWkgMzE"})
    assert (tc.trace_id, tc.span_id, tc.flags) == (TRACE, SPAN, "01")
    assert tc.tracestate == "congo=t61rcWkgMzE"
    assert tc.continued and tc.sampled


def test_unsampled_flags_are_kept() -> None:
    tc = TraceContext.from_headers({"traceparent": f"00-{TRACE}-{SPAN}-00"})
    assert tc.flags == "00"
    assert not tc.sampled
    assert tc.child().to_headers()["traceparent"].endswith("-00")


def test_child_keeps_trace_id_and_gets_new_span_id() -> None:
    tc = TraceContext.from_headers({"traceparent": VALID, "tracestate": "a=1,b=2"})
    child = tc.child()
    assert child.trace_id == TRACE
    assert child.span_id != SPAN
    assert re.fullmatch(r"[0-9a-f]{16}", child.span_id)
    assert child.to_headers() == {
        "traceparent": f"00-{TRACE}-{child.span_id}-01",
        "tracestate": "a=1,b=2",
    }
    # Two children of one task are different spans of the same trace.
    assert tc.child().span_id != child.span_id


def test_to_headers_omits_absent_tracestate() -> None:
    headers = TraceContext.from_headers({"traceparent": VALID}).to_headers()
    assert headers == {"traceparent": VALID}


def test_missing_traceparent_starts_a_new_trace() -> None:
    for headers in (None, {}, {"ktf-task-id": "x"}):
        tc = TraceContext.from_headers(headers)
        assert not tc.continued
        assert TRACEPARENT_RE.match(tc.traceparent)
        assert tc.trace_id != "0" * 32 and tc.span_id != "0" * 16
    assert TraceContext.from_headers({}).trace_id != TraceContext.from_headers({}).trace_id


@pytest.mark.parametrize(
    "value",
    [
        "",
        "garbage",
        f"01-{TRACE}-{SPAN}-01",  # unknown version
        f"ff-{TRACE}-{SPAN}-01",  # forbidden version
        f"00-{'0' * 32}-{SPAN}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero span id
        f"00-{TRACE.upper()}-{SPAN}-01",  # uppercase hex is invalid
        f"00-{TRACE[:-1]}-{SPAN}-01",  # short trace id
        f"00-{TRACE}-{SPAN}0-01",  # long span id
        f"00-{TRACE}-{SPAN}-1",  # one-digit flags
        f"00-{TRACE}-{SPAN}-zz",  # non-hex flags
        f"00-{TRACE}-{SPAN}-01-extra",
        f"00_{TRACE}_{SPAN}_01",
    ],
)
def test_invalid_traceparent_starts_a_new_trace_and_drops_tracestate(value: str) -> None:
    assert parse_traceparent(value) is None
    tc = TraceContext.from_headers({"traceparent": value, "tracestate": "vendor=1"})
    assert not tc.continued
    assert tc.trace_id != TRACE
    assert tc.tracestate is None
    assert TRACEPARENT_RE.match(tc.traceparent)


def test_header_name_case_is_tolerated() -> None:
    tc = TraceContext.from_headers({"Traceparent": VALID, "TraceState": "a=1"})
    assert tc.trace_id == TRACE and tc.tracestate == "a=1"


def test_round_trip_through_headers_is_lossless() -> None:
    tc = TraceContext.from_headers({"traceparent": VALID, "tracestate": "a=1"}).child()
    again = TraceContext.from_headers(tc.to_headers())
    assert (again.trace_id, again.span_id, again.flags, again.tracestate) == (
        tc.trace_id,
        tc.span_id,
        tc.flags,
        tc.tracestate,
    )


def test_task_span_is_a_noop_without_opentelemetry(monkeypatch: pytest.MonkeyPatch) -> None:
    from framework.observability import tracing

    monkeypatch.setattr(tracing, "_otel_trace", None)  # as if opentelemetry-api were absent
    assert not tracing.spans_enabled()
    with task_span("task", TraceContext.new(), topic="t") as span:
        assert span is None


def test_task_span_continues_the_trace_with_opentelemetry() -> None:
    tc = TraceContext.from_headers({"traceparent": VALID})
    with task_span("task", tc, topic="t") as span:
        assert f"{span.get_span_context().trace_id:032x}" == TRACE
