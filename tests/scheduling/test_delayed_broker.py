"""Delayed tasks against the real broker: never early, immediate tasks not held back,
a delayed task cancelled before its time never runs."""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from typing import Any

import pytest

from framework import headers as h
from framework.client import TaskClient
from framework.registry import handler
from framework.runtime.context import TaskContext
from framework.runtime.worker import Worker
from framework.scheduling.delay import due_of
from tests.routing.kafka_helpers import STORE, Reader, ensure_topics, hdrs, registry_of, settings
from tests.scheduling.helpers import until

pytestmark = pytest.mark.broker


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


@pytest.mark.slow
def test_delayed_tasks_start_on_time_without_holding_back_immediate_ones(
    kafka_bootstrap: str, unique: str
) -> None:
    topic = f"{unique}.tasks"
    started: dict[str, tuple[float, int | None]] = {}

    @handler(topic=topic, schema="ktf.examples.WordCountTask", concurrency=200)
    async def words(t: dict[str, Any], ctx: TaskContext) -> None:
        started[ctx.task_id] = (time.time(), due_of(ctx.headers))

    registry = registry_of(words)
    ensure_topics(kafka_bootstrap, registry, partitions=3)
    rng = random.Random(15)
    n = 1_000
    delays = [rng.uniform(0.0, 20.0) for _ in range(n)]
    due: dict[str, float] = {}
    immediate_sent: dict[str, float] = {}
    cancelled: list[str] = []
    payload = {"text": "a b", "lowercase": True}

    async def main() -> int:
        s = settings(kafka_bootstrap, unique, session_timeout_ms=6000)
        async with (
            Worker(s, registry, schemas=STORE, schedules=[]) as worker,
            TaskClient(s, handlers=registry) as client,
        ):
            # Interleaved: 20 delayed, then 20 immediate, and so on, all on one topic.
            for start in range(0, n, 20):
                batch = delays[start : start + 20]
                sent_at = time.time()
                ids = await asyncio.gather(*(client.submit(topic, payload, delay=d) for d in batch))
                for tid, d in zip(ids, batch, strict=True):
                    due[tid] = sent_at + d
                now = time.time()
                for tid in await client.submit_many(topic, [payload] * 20):
                    immediate_sent[tid] = now
            # Delayed 10 s and cancelled at once: must never run.
            cancelled_due = time.time() + 10.0
            cancelled.extend(
                await asyncio.gather(
                    *(client.submit(topic, payload, delay=10.0) for _ in range(20))
                )
            )
            for tid in cancelled:
                await client.cancel(tid, "no longer needed")
            await until(lambda: len(started) >= 2 * n, 60, step=0.2)
            # Past the cancelled ones' due time, until each came up and was answered.
            await until(
                lambda: (
                    time.time() > cancelled_due + 1.0
                    and _outcomes(worker, "cancelled") >= len(cancelled)
                ),
                30,
                step=0.2,
            )
            return _outcomes(worker, "cancelled")

    answered_cancelled = asyncio.run(main())
    missing = [t for t in [*due, *immediate_sent] if t not in started]
    assert not missing, f"{len(missing)} tasks never ran"
    early = {t: due_ms - started[t][0] * 1000 for t in due if (due_ms := started[t][1])}
    assert all(started[t][1] is not None for t in due), "a delayed task lost its due time"
    assert all(v <= 0 for v in early.values()), f"ran early: {sorted(early.values())[-3:]}"
    lateness = [started[t][0] - started[t][1] / 1000 for t in due]  # type: ignore[operator]
    latency = [started[t][0] - immediate_sent[t] for t in immediate_sent]
    print(
        f"\ndelayed lateness p50={_pct(lateness, 50) * 1000:.0f}ms "
        f"p99={_pct(lateness, 99) * 1000:.0f}ms max={max(lateness) * 1000:.0f}ms; "
        f"immediate latency p50={_pct(latency, 50) * 1000:.0f}ms "
        f"p99={_pct(latency, 99) * 1000:.0f}ms max={max(latency) * 1000:.0f}ms"
    )
    # Immediate tasks overtake delayed ones: none waits anywhere near a delay.
    assert _pct(latency, 99) < 3.0
    assert _pct(lateness, 99) < 3.0
    ran_cancelled = [t for t in cancelled if t in started]
    assert not ran_cancelled, f"{len(ran_cancelled)} cancelled delayed tasks ran"
    assert answered_cancelled == len(cancelled)


def _outcomes(worker: Worker, outcome: str) -> float:
    return sum(
        sample.value
        for family in worker.metrics.registry.collect()
        if family.name == "ktf_tasks"
        for sample in family.samples
        if sample.name == "ktf_tasks_total" and sample.labels.get("outcome") == outcome
    )


def test_delayed_task_hops_through_tiers_keeping_its_bytes_and_headers(
    kafka_bootstrap: str, unique: str
) -> None:
    topic = f"{unique}.tasks"
    seen: list[tuple[float, TaskContext]] = []

    @handler(topic=topic, schema="ktf.examples.WordCountTask")
    async def words(t: dict[str, Any], ctx: TaskContext) -> None:
        seen.append((time.time(), ctx))

    registry = registry_of(words)
    ensure_topics(kafka_bootstrap, registry)
    tier5 = Reader(kafka_bootstrap, f"{topic}.delay.5s")

    async def main() -> tuple[str, float]:
        s = settings(kafka_bootstrap, unique, session_timeout_ms=6000)
        async with (
            Worker(s, registry, schemas=STORE, schedules=[]),
            TaskClient(s, handlers=registry) as client,
        ):
            sent = time.time()
            tid = await client.submit(
                topic, {"text": "later", "lowercase": True}, key="k", delay=6.5,
                headers={"x-trace-me": "yes"},
            )  # fmt: skip
            await until(lambda: bool(seen), 30)
            return tid, sent

    tid, sent = asyncio.run(main())
    assert len(seen) == 1
    at, ctx = seen[0]
    assert ctx.task_id == tid and at >= sent + 6.5
    assert ctx.headers["x-trace-me"] == "yes" and ctx.key == b"k"
    assert ctx.headers[h.ORIGINAL_TOPIC] == topic
    hop = tier5.wait_for(1, timeout=10)[0]
    got = hdrs(hop)
    assert got[h.TASK_ID] == tid and hop.key() == b"k"
    assert int(got["ktf-run-at"]) >= int(sent * 1000 + 6500)
    assert int(got[h.NOT_BEFORE]) <= int(got["ktf-run-at"])
    tier5.close()
