"""OpenTelemetry spans around handler calls, when an SDK provider is installed."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace as otel

from framework import TaskContext, handler
from framework import headers as h
from framework.observability import tracing
from framework.observability.metrics import WorkerMetrics
from framework.registry import spec_of
from framework.runtime.execution import TaskRunner
from framework.runtime.state import Envelope, PartitionState
from framework.serde import SchemaStore, TopicCodecs

ROOT = Path(__file__).resolve().parents[2]
STORE = SchemaStore.load([ROOT / "schemas"])
CODEC = STORE.codec("ktf.examples.WordCountTask")
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


class _Router:
    def begin(self, env: Envelope) -> None: ...
    def end(self, env: Envelope) -> None: ...
    def reply_topic(self, env: Envelope) -> str | None:
        return None


class _Recorder(otel.TracerProvider):
    """A minimal SDK stand-in: records the spans opened through the API."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, Any, dict[str, Any]]] = []

    def get_tracer(self, *args: Any, **kwargs: Any) -> Any:
        provider = self

        class _Tracer(otel.NoOpTracer):
            def start_as_current_span(self, name: str, context: Any = None, **kw: Any) -> Any:
                parent = otel.get_current_span(context).get_span_context()
                provider.spans.append((name, parent, dict(kw.get("attributes") or {})))
                return super().start_as_current_span(name, context=context, **kw)

        return _Tracer()


def _run_one(monkeypatch: pytest.MonkeyPatch, provider: Any) -> list[str]:
    monkeypatch.setattr(tracing._otel_trace, "get_tracer_provider", lambda: provider)
    monkeypatch.setattr(tracing._otel_trace, "get_tracer", provider.get_tracer)
    ran: list[str] = []

    @handler(topic="spans.t", schema="ktf.examples.WordCountTask")
    async def work(task: dict[str, Any], ctx: TaskContext) -> None:
        ran.append(ctx.task_id)

    spec = spec_of(work)
    assert spec is not None
    runner = TaskRunner(
        {spec.topic: TopicCodecs(CODEC, None)},
        _Router(),  # type: ignore[arg-type]
        WorkerMetrics(),
    )
    headers = {h.TASK_ID: "span-task", "traceparent": f"00-{TRACE}-{PARENT}-01"}
    env = Envelope(
        PartitionState(spec.topic, 2),
        spec,
        7,
        b"k",
        CODEC.encode({"text": "x", "lowercase": True}),
        h.encode(headers),
        1,
    )
    asyncio.run(runner.run(env))
    return ran


def test_handler_runs_inside_a_span_whose_parent_is_the_callers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    provider = _Recorder()
    assert _run_one(monkeypatch, provider) == ["span-task"]
    assert len(provider.spans) == 1
    name, parent, attrs = provider.spans[0]
    assert name == "ktf.task work"
    assert f"{parent.trace_id:032x}" == TRACE
    assert f"{parent.span_id:016x}" == PARENT
    assert attrs["messaging.kafka.message.offset"] == 7
    assert attrs["ktf.task_id"] == "span-task"


def test_no_span_is_opened_without_an_sdk_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = _Recorder()
    monkeypatch.setattr(tracing._otel_trace, "get_tracer", recorder.get_tracer)
    # The API's default provider records nothing: the runner must not pay for spans.
    assert not tracing.spans_enabled()
    assert _run_one(monkeypatch, otel.ProxyTracerProvider()) == ["span-task"]
    assert recorder.spans == []
