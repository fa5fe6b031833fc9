"""In-process Worker against the real broker: key ordering, long handlers, safe commits."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import defaultdict
from typing import Any

import pytest

from framework.registry import HandlerRegistry, handler, spec_of
from framework.runtime.worker import Worker
from framework.serde import SchemaStore
from tests.runtime._helpers import (
    ROOT,
    committed,
    create_topics,
    inprocess_settings,
    produce_tasks,
)
from tests.runtime.handlers_fixture import TASK_SCHEMA

pytestmark = pytest.mark.broker


def _registry(topic: str, fn: Any, **kw: Any) -> HandlerRegistry:
    spec = spec_of(handler(topic=topic, schema=TASK_SCHEMA, **kw)(fn))
    assert spec is not None
    return HandlerRegistry([spec])


def _store() -> SchemaStore:
    return SchemaStore.load([ROOT / "schemas"])


async def _until(cond: Any, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


def test_key_ordering_sequential_per_key_parallel_across_keys(
    kafka_bootstrap: str, unique: str
) -> None:
    topic = f"{unique}.tasks"
    create_topics(kafka_bootstrap, {topic: 2, f"{topic}.dlq": 1})
    keys = [b"k%d" % i for i in range(8)]
    n_tasks = 400
    produce_tasks(kafka_bootstrap, topic, [(keys[n % 8], n, 5) for n in range(n_tasks)])
    runs: list[tuple[int, bytes, int, float, float]] = []

    async def fn(task: dict[str, Any], ctx: Any) -> None:
        started = time.monotonic()
        await asyncio.sleep(task["sleep_ms"] / 1000)
        runs.append((ctx.partition, ctx.key, ctx.offset, started, time.monotonic()))

    async def main() -> None:
        settings = inprocess_settings(kafka_bootstrap, f"{unique}-g")
        async with Worker(settings, _registry(topic, fn, ordering="key"), schemas=_store()):
            await _until(lambda: len(runs) >= n_tasks, 45, f"{n_tasks} tasks")

    asyncio.run(main())
    assert len(runs) == n_tasks
    by_lane: dict[tuple[int, bytes], list[tuple[int, float, float]]] = defaultdict(list)
    for partition, key, offset, started, ended in runs:
        by_lane[(partition, key)].append((offset, started, ended))
    for lane, items in by_lane.items():
        items.sort(key=lambda it: it[1])  # by start time
        offsets = [it[0] for it in items]
        assert offsets == sorted(offsets), f"lane {lane} ran out of offset order"
        for (o1, _s1, e1), (o2, s2, _e2) in itertools.pairwise(items):
            assert s2 >= e1, f"lane {lane}: offset {o2} started before {o1} ended"
    # Different keys overlap in time: sweep the start/end events.
    edges = sorted([(s, 1) for *_, s, _e in runs] + [(e, -1) for *_, _s, e in runs])
    level = peak = 0
    for _t, d in edges:
        level += d
        peak = max(peak, level)
    print(f"peak concurrency across keys: {peak} (8 keys)")
    assert peak > 1


def test_handler_longer_than_max_poll_interval_keeps_membership(
    kafka_bootstrap: str, unique: str
) -> None:
    topic = f"{unique}.tasks"
    create_topics(kafka_bootstrap, {topic: 2, f"{topic}.dlq": 1})
    per_partition = 20
    for p in range(2):
        produce_tasks(
            kafka_bootstrap,
            topic,
            [(b"k", p * 100 + i, 12_000 if i == 0 else 0) for i in range(per_partition)],
            partition=p,
        )
    done: list[int] = []

    async def fn(task: dict[str, Any], ctx: Any) -> None:
        await asyncio.sleep(task["sleep_ms"] / 1000)
        done.append(task["n"])

    async def main() -> None:
        settings = inprocess_settings(
            kafka_bootstrap,
            f"{unique}-g",
            max_poll_interval_ms=10_000,
            session_timeout_ms=6_000,
            partition_buffer_high=5,
            partition_buffer_low=1,
            batch_size=50,
        )
        worker = Worker(settings, _registry(topic, fn, ordering="partition"), schemas=_store())
        async with worker:
            await _until(lambda: any(e[0] == "assign" for e in worker.events), 20, "assignment")
            assert worker._consumer is not None
            member_before = worker._consumer.raw.memberid()
            await _until(lambda: len(done) >= 2 * per_partition, 40, "every task")
            # Buffers drained: flow control resumes on its next pass.
            await _until(lambda: any(e[0] == "resume" for e in worker.events), 10, "resume")
            member_after = worker._consumer.raw.memberid()
            # Snapshot before stop(): leaving the group on close revokes, by design.
            kinds = [e[0] for e in worker.events]
        print(f"events while running: {kinds}")
        assert member_before and member_before == member_after
        assert kinds.count("assign") == 1
        assert "revoke" not in kinds and "lost" not in kinds
        assert "pause" in kinds and "resume" in kinds
        assert kinds.index("pause") < kinds.index("resume")

    asyncio.run(main())
    assert sorted(done) == sorted(p * 100 + i for p in range(2) for i in range(per_partition))


def test_commit_never_passes_an_unfinished_record_across_restart(
    kafka_bootstrap: str, unique: str
) -> None:
    topic = f"{unique}.tasks"
    group = f"{unique}-g"
    create_topics(kafka_bootstrap, {topic: 1, f"{topic}.dlq": 1})
    n_tasks = 50
    produce_tasks(kafka_bootstrap, topic, [(b"k%d" % n, n, 0) for n in range(n_tasks)])
    hang = asyncio.Event  # the first run of offset 0 never finishes on its own
    runs: list[tuple[int, int]] = []  # (generation, offset)
    generation = 0

    async def fn(task: dict[str, Any], ctx: Any) -> None:
        runs.append((generation, ctx.offset))
        if ctx.offset == 0 and generation == 0:
            await hang().wait()

    settings = inprocess_settings(kafka_bootstrap, group, drain_timeout=1.0)

    async def first() -> float:
        worker = Worker(settings, _registry(topic, fn, ordering="unordered"), schemas=_store())
        await worker.start()
        try:
            await _until(lambda: len(runs) >= n_tasks, 30, "every task started")
            await asyncio.sleep(1.0)  # several commit intervals pass
            point = committed(kafka_bootstrap, group, topic, 1)[0]
            assert point in (0, -1001), f"committed {point} while offset 0 is still running"
        finally:
            began = time.monotonic()
            await worker.stop()
        return time.monotonic() - began

    stop_seconds = asyncio.run(first())
    print(f"stop with a stuck task took {stop_seconds:.2f}s (drain_timeout 1.0s)")
    # The stuck task gets the drain timeout once, not again on the close-time revoke.
    assert stop_seconds < 1.0 + 3.0
    after_stop = committed(kafka_bootstrap, group, topic, 1)[0]
    assert after_stop in (0, -1001), f"committed {after_stop} past the unfinished offset 0"

    generation = 1

    async def second() -> None:
        async with Worker(settings, _registry(topic, fn, ordering="unordered"), schemas=_store()):
            await _until(lambda: (1, 0) in runs, 30, "offset 0 re-run")
            await _until(
                lambda: committed(kafka_bootstrap, group, topic, 1)[0] == n_tasks,
                20,
                "commit of the whole partition",
            )

    asyncio.run(second())
    assert (1, 0) in runs
