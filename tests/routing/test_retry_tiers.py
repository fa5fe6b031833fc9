"""Retry tiers against the real broker: delays honoured, attempts exact, headers complete."""

from __future__ import annotations

import time
from typing import Any

import pytest

from framework import headers as h
from framework.registry import handler
from framework.routing.policy import RetryPolicy
from framework.runtime.context import TaskContext
from framework.runtime.worker import Worker
from tests.routing.kafka_helpers import (
    Reader,
    ensure_topics,
    hdrs,
    produce,
    registry_of,
    run_with_worker,
    settings,
    task,
)

pytestmark = pytest.mark.broker


def test_task_failing_twice_succeeds_through_tiers_never_early(
    kafka_bootstrap: str, unique: str
) -> None:
    calls: dict[str, list[tuple[int, float]]] = {}

    @handler(
        topic=f"{unique}.tasks",
        schema="ktf.examples.WordCountTask",
        reply_topic=f"{unique}.reply",
        retry=RetryPolicy(tiers=("1s", "2s")),
    )
    async def flaky(t: dict[str, Any], ctx: TaskContext) -> None:
        calls.setdefault(ctx.task_id, []).append((ctx.attempt, time.time()))
        if ctx.attempt < 3:
            raise RuntimeError(f"transient failure on attempt {ctx.attempt}")

    registry = registry_of(flaky)
    ensure_topics(kafka_bootstrap, registry, partitions=2)
    ids = [f"{unique}-{i}" for i in range(6)]
    produce(
        kafka_bootstrap,
        f"{unique}.tasks",
        [(i.encode(), task(), {h.TASK_ID: i}) for i in ids],
    )
    replies = Reader(kafka_bootstrap, f"{unique}.reply")

    async def body(worker: Worker) -> None:
        await replies.await_for(len(ids), timeout=30)

    worker = run_with_worker(settings(kafka_bootstrap, unique), registry, body)
    statuses = {hdrs(m)[h.TASK_ID]: hdrs(m)[h.STATUS] for m in replies.records}
    assert statuses == dict.fromkeys(ids, "ok")
    for task_id in ids:
        seen = calls[task_id]
        assert [a for a, _ in seen] == [1, 2, 3], seen
        assert seen[1][1] - seen[0][1] >= 1.0, f"tier 1s ran early: {seen}"
        assert seen[2][1] - seen[1][1] >= 2.0, f"tier 2s ran early: {seen}"
    assert worker.metrics.retries_total.labels("flaky", "1s")._value.get() == len(ids)
    assert worker.metrics.retries_total.labels("flaky", "2s")._value.get() == len(ids)
    replies.close()


def test_permanent_failure_dead_letters_after_exact_attempts_with_all_headers(
    kafka_bootstrap: str, unique: str
) -> None:
    runs: list[int] = []

    @handler(
        topic=f"{unique}.tasks",
        schema="ktf.examples.WordCountTask",
        reply_topic=f"{unique}.reply",
        retry=RetryPolicy(attempts=2, backoff=0.01, max_backoff=0.05, tiers=("1s",)),
    )
    async def broken(t: dict[str, Any], ctx: TaskContext) -> None:
        runs.append(ctx.attempt)
        raise RuntimeError("database is gone for good")

    registry = registry_of(broken)
    ensure_topics(kafka_bootstrap, registry)
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    sent = {
        h.TASK_ID: f"{unique}-t1",
        h.REPLY_TO: f"{unique}.reply",
        h.CORRELATION_ID: "corr-42",
        h.DEADLINE: str(int(time.time() * 1000) + 120_000),
        h.TRACEPARENT: traceparent,
        h.TRACESTATE: "vendor=1",
    }
    value = task("permanent failure")
    produce(kafka_bootstrap, f"{unique}.tasks", [(b"k1", value, sent)])
    dlq = Reader(kafka_bootstrap, f"{unique}.tasks.dlq")
    replies = Reader(kafka_bootstrap, f"{unique}.reply")

    async def body(worker: Worker) -> None:
        await dlq.await_for(1, timeout=30)
        await replies.await_for(1, timeout=10)

    run_with_worker(settings(kafka_bootstrap, unique), registry, body)
    # 2 in-process attempts on the first delivery and 2 on the one tier: exactly 4 runs.
    assert runs == [1, 1, 2, 2]
    assert len(dlq.records) == 1
    msg = dlq.records[0]
    assert msg.key() == b"k1" and msg.value() == value
    got = hdrs(msg)
    for name in (h.TASK_ID, h.REPLY_TO, h.CORRELATION_ID, h.DEADLINE, h.TRACESTATE):
        assert got[name] == sent[name], name
    assert got[h.TRACEPARENT].split("-")[1] == traceparent.split("-")[1]  # same trace
    assert got[h.ATTEMPT] == "2"
    assert got[h.ERROR_TYPE] == "RuntimeError"
    assert got[h.ERROR_MESSAGE] == "database is gone for good"
    assert "RuntimeError: database is gone for good" in got[h.ERROR_STACK]
    assert got[h.ORIGINAL_TOPIC] == f"{unique}.tasks"
    assert got[h.ORIGINAL_PARTITION] == "0" and got[h.ORIGINAL_OFFSET] == "0"
    assert int(got[h.ORIGINAL_TIMESTAMP]) > 0
    assert got[h.CONSUMER_GROUP] == f"{unique}-g"
    assert abs(int(got[h.FAILED_AT]) - time.time() * 1000) < 60_000
    reply = hdrs(replies.records[0])
    assert reply[h.STATUS] == "error" and reply[h.CORRELATION_ID] == "corr-42"
    assert reply[h.ERROR_TYPE] == "RuntimeError"
    dlq.close()
    replies.close()
