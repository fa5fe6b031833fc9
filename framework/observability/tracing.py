"""W3C trace context (``traceparent`` / ``tracestate``) carried on Kafka headers.

A task that arrives with a valid ``traceparent`` is continued: everything it
produces (reply, retry, dead letter, sub-tasks) carries the same trace id with a
new span id. A task without one, or with a malformed one, starts a new trace, so
every record the framework produces is traceable.

When ``opentelemetry-api`` is installed, :func:`task_span` also opens a real span
whose parent is the incoming context; without it, :func:`task_span` is a no-op.
There is no hard dependency on OpenTelemetry.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from framework.headers import TRACEPARENT, TRACESTATE

__all__ = ["OTEL_AVAILABLE", "TraceContext", "spans_enabled", "task_span"]

_VERSION = "00"
_HEX = frozenset("0123456789abcdef")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
# A started trace is sampled: operators want to see it unless a caller decided otherwise.
_NEW_TRACE_FLAGS = "01"
# W3C limits tracestate to 32 list members; a longer value is not propagated.
_TRACESTATE_MAX_MEMBERS = 32


def _is_hex(value: str, length: int) -> bool:
    # The spec requires lowercase hex; uppercase is invalid, not normalised.
    return len(value) == length and all(c in _HEX for c in value)


def _new_trace_id() -> str:
    while True:
        value = os.urandom(16).hex()
        if value != _ZERO_TRACE:
            return value


def _new_span_id() -> str:
    while True:
        value = os.urandom(8).hex()
        if value != _ZERO_SPAN:
            return value


def parse_traceparent(value: str) -> tuple[str, str, str] | None:
    """Split a ``traceparent`` into (trace id, span id, flags), or None if invalid.

    Valid means: version ``00``, a 32-hex trace id that is not all zero, a 16-hex
    span id that is not all zero and 2 hex flags, separated by ``-``.
    """
    parts = value.strip().split("-")
    if len(parts) != 4:
        return None
    version, trace_id, span_id, flags = parts
    if version != _VERSION:
        return None
    if not _is_hex(trace_id, 32) or trace_id == _ZERO_TRACE:
        return None
    if not _is_hex(span_id, 16) or span_id == _ZERO_SPAN:
        return None
    if not _is_hex(flags, 2):
        return None
    return trace_id, span_id, flags


def _clean_tracestate(value: str | None) -> str | None:
    if value is None:
        return None
    members = [m.strip() for m in value.split(",") if m.strip()]
    if not members or len(members) > _TRACESTATE_MAX_MEMBERS:
        return None
    return ",".join(members)


@dataclass(frozen=True, slots=True)
class TraceContext:
    """One position in a trace: the trace id, this span's id, flags and vendor state.

    ``continued`` is True when the context came from a valid incoming
    ``traceparent`` (or descends from one), False when a new trace was started.
    """

    trace_id: str
    span_id: str
    flags: str = _NEW_TRACE_FLAGS
    tracestate: str | None = None
    continued: bool = False

    @classmethod
    def new(cls) -> TraceContext:
        """Start a new trace with random ids."""
        return cls(_new_trace_id(), _new_span_id(), _NEW_TRACE_FLAGS, None, False)

    @classmethod
    def from_headers(cls, headers: Mapping[str, str] | None) -> TraceContext:
        """Continue the trace in ``headers``; start a new one if it is missing or invalid.

        ``tracestate`` is kept only alongside a valid ``traceparent``, as the W3C
        specification requires.
        """
        if not headers:
            return cls.new()
        raw = headers.get(TRACEPARENT)
        if raw is None:
            # Kafka header names are case-sensitive, but HTTP bridges often title-case them.
            raw = next((v for k, v in headers.items() if k.lower() == TRACEPARENT), None)
        if raw is None:
            return cls.new()
        parsed = parse_traceparent(raw)
        if parsed is None:
            return cls.new()
        trace_id, span_id, flags = parsed
        state = headers.get(TRACESTATE)
        if state is None:
            state = next((v for k, v in headers.items() if k.lower() == TRACESTATE), None)
        return cls(trace_id, span_id, flags, _clean_tracestate(state), True)

    @property
    def sampled(self) -> bool:
        """Whether the ``sampled`` flag (bit 0) is set."""
        return bool(int(self.flags, 16) & 0x01)

    @property
    def traceparent(self) -> str:
        """This context as a ``traceparent`` header value."""
        return f"{_VERSION}-{self.trace_id}-{self.span_id}-{self.flags}"

    def child(self) -> TraceContext:
        """The same trace with a new span id (for a record this task produces)."""
        return TraceContext(self.trace_id, _new_span_id(), self.flags, self.tracestate, True)

    def to_headers(self) -> dict[str, str]:
        """``traceparent`` (and ``tracestate`` when present) for an outgoing record."""
        out = {TRACEPARENT: self.traceparent}
        if self.tracestate:
            out[TRACESTATE] = self.tracestate
        return out


def _load_otel() -> Any:
    # Imported by name so type checking and installs without OpenTelemetry both work.
    try:
        return importlib.import_module("opentelemetry.trace")
    except ImportError:
        return None


_otel_trace: Any = _load_otel()
#: True when ``opentelemetry-api`` is importable and :func:`task_span` creates spans.
OTEL_AVAILABLE = _otel_trace is not None


def spans_enabled() -> bool:
    """Whether spans would be recorded: the API is installed and an SDK provider is set.

    With the API alone every span is a no-op, so the runtime skips the (per-task)
    cost of opening one.
    """
    if _otel_trace is None:
        return False
    return not isinstance(_otel_trace.get_tracer_provider(), _otel_trace.ProxyTracerProvider)


@contextlib.contextmanager
def task_span(name: str, tc: TraceContext, **attributes: Any) -> Iterator[Any]:
    """Open an OpenTelemetry span named ``name`` whose parent is ``tc``.

    Yields the span, or None when OpenTelemetry is not installed (a no-op).
    Attributes with a None value are skipped.
    """
    if _otel_trace is None:
        yield None
        return
    parent = _otel_trace.SpanContext(
        trace_id=int(tc.trace_id, 16),
        span_id=int(tc.span_id, 16),
        is_remote=True,
        trace_flags=_otel_trace.TraceFlags(int(tc.flags, 16)),
    )
    ctx = _otel_trace.set_span_in_context(_otel_trace.NonRecordingSpan(parent))
    tracer = _otel_trace.get_tracer("ktf")
    attrs = {k: v for k, v in attributes.items() if v is not None}
    with tracer.start_as_current_span(
        name, context=ctx, kind=_otel_trace.SpanKind.CONSUMER, attributes=attrs
    ) as span:
        yield span
