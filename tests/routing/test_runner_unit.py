"""TaskRunner's failure paths with a recording router: in-process retries, routing choices."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from framework import headers as h
from framework.errors import Reject, Retry
from framework.observability.metrics import WorkerMetrics
from framework.registry import handler, spec_of
from framework.routing.policy import RetryPolicy
from framework.runtime.execution import TaskRunner
from framework.runtime.state import Envelope, PartitionState
from framework.serde import TopicCodecs
from tests.routing.kafka_helpers import STORE, task


class RecordingRouter:
    """Duck-types the Router methods the runner calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def begin(self, env: Envelope) -> None:
        pass

    def end(self, env: Envelope) -> None:
        pass

    def reply_topic(self, env: Envelope) -> str | None:
        return f"{env.spec.topic}.reply"

    def reply(self, env: Envelope, *, status: str, **kw: Any) -> bool:
        self.calls.append(("reply", status))
        return True

    def dead_letter(self, env: Envelope, exc: BaseException, *, error_type: str, **kw: Any) -> None:
        self.calls.append(("dlq", error_type))

    def forward(self, env: Envelope, topic: str, extra: dict[str, str], trace: Any) -> None:
        self.calls.append(("forward", (topic, extra)))


def _run(fn: Any, headers: dict[str, str] | None = None) -> RecordingRouter:
    spec = spec_of(fn)
    assert spec is not None
    router = RecordingRouter()
    codec = STORE.codec("ktf.examples.WordCountTask")
    runner = TaskRunner({spec.topic: TopicCodecs(codec, None)}, router, WorkerMetrics())  # type: ignore[arg-type]
    runner.is_cancelled = lambda tid: tid == "cancelled-id"
    env = Envelope(PartitionState(spec.topic, 0), spec, 0, b"k", task(), h.encode(headers or {}), 1)
    asyncio.run(runner.run(env))
    return router


def test_transient_failures_are_retried_in_process_with_backoff() -> None:
    calls: list[float] = []

    @handler(
        topic="u.t",
        schema="ktf.examples.WordCountTask",
        retry=RetryPolicy(attempts=3, backoff=0.05, max_backoff=0.2),
    )
    async def flaky(t: Any, ctx: Any) -> None:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise ConnectionError("blip")

    router = _run(flaky)
    assert router.calls == [("reply", "ok")]
    assert len(calls) == 3
    assert calls[1] - calls[0] >= 0.05 and calls[2] - calls[1] >= 0.05


def test_retry_delay_beyond_the_in_process_budget_goes_straight_to_a_tier() -> None:
    calls: list[int] = []

    @handler(
        topic="u.t",
        schema="ktf.examples.WordCountTask",
        retry=RetryPolicy(attempts=5, backoff=0.01, max_backoff=0.1, tiers=("1s",)),
    )
    async def later(t: Any, ctx: Any) -> None:
        calls.append(1)
        raise Retry("rate limited", delay=30)

    before = time.time() * 1000
    router = _run(later)
    assert len(calls) == 1
    assert router.calls[0][0] == "forward"
    topic, extra = router.calls[0][1]
    assert topic == "u.t.retry.1s" and extra[h.ATTEMPT] == "2"
    assert int(extra[h.NOT_BEFORE]) >= before + 30_000


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ValueError("bad field"), [("dlq", "ValueError"), ("reply", "error")]),
        (Reject("never"), [("dlq", "Reject"), ("reply", "error")]),
    ],
)
def test_permanent_errors_skip_every_retry(exc: Exception, expected: list[Any]) -> None:
    calls: list[int] = []

    @handler(
        topic="u.t",
        schema="ktf.examples.WordCountTask",
        retry=RetryPolicy(attempts=3, tiers=("1s",), non_retriable=(ValueError,)),
    )
    async def strict(t: Any, ctx: Any) -> None:
        calls.append(1)
        raise exc

    assert _run(strict).calls == expected
    assert len(calls) == 1


def test_cancelled_task_is_skipped_when_it_comes_up() -> None:
    calls: list[int] = []

    @handler(topic="u.t", schema="ktf.examples.WordCountTask")
    async def never(t: Any, ctx: Any) -> None:
        calls.append(1)

    assert _run(never, {h.TASK_ID: "cancelled-id"}).calls == [("reply", "cancelled")]
    assert calls == []


def test_deadline_stops_in_process_retries() -> None:
    calls: list[int] = []

    @handler(
        topic="u.t",
        schema="ktf.examples.WordCountTask",
        retry=RetryPolicy(attempts=50, backoff=0.1, max_backoff=0.1),
    )
    async def failing(t: Any, ctx: Any) -> None:
        calls.append(1)
        raise ConnectionError("down")

    deadline = int(time.time() * 1000) + 350
    router = _run(failing, {h.DEADLINE: str(deadline)})
    assert router.calls == [("dlq", "ConnectionError"), ("reply", "error")]
    assert 2 <= len(calls) <= 5
