"""HandlerPool lanes: key, partition and unordered semantics (no broker)."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

from framework.registry import HandlerSpec, handler, spec_of
from framework.runtime.pool import HandlerPool
from framework.runtime.state import Envelope, PartitionState

SCHEMA: dict[str, Any] = {"type": "record", "name": "T", "fields": []}


def _spec(ordering: str, concurrency: int = 50) -> HandlerSpec:
    async def fn(task: Any, ctx: Any) -> None:
        return None

    spec = spec_of(
        handler(topic="t", schema=SCHEMA, ordering=ordering, concurrency=concurrency)(fn)
    )  # type: ignore[arg-type]
    assert spec is not None
    return spec


class Recorder:
    """A fake ``process``: records start/end per envelope, sleeps a given time."""

    def __init__(self, delay: dict[int, float] | None = None) -> None:
        self.events: list[tuple[str, int, int, bytes | None]] = []
        self.running = 0
        self.peak = 0
        self.delay = delay or {}

    async def __call__(self, env: Envelope) -> None:
        self.running += 1
        self.peak = max(self.peak, self.running)
        self.events.append(("start", env.partition, env.offset, env.key))
        await asyncio.sleep(self.delay.get(env.offset, 0.01))
        self.events.append(("end", env.partition, env.offset, env.key))
        self.running -= 1


async def _run(pool: HandlerPool, envs: list[Envelope], rec: Recorder) -> None:
    pool.start()
    for env in envs:
        pool.submit(env)
    for _ in range(500):
        if sum(1 for e in rec.events if e[0] == "end") == len(envs):
            break
        await asyncio.sleep(0.01)
    await pool.stop()


def _envs(spec: HandlerSpec, items: list[tuple[int, int, bytes | None]]) -> list[Envelope]:
    states: dict[int, PartitionState] = {}
    out = []
    for partition, offset, key in items:
        state = states.setdefault(partition, PartitionState("t", partition))
        out.append(Envelope(state, spec, offset, key, b"", None, 0))
    return out


def _intervals(rec: Recorder) -> dict[tuple[int, int], tuple[int, int]]:
    """(partition, offset) -> (start index, end index) in the event log."""
    start: dict[tuple[int, int], int] = {}
    out: dict[tuple[int, int], tuple[int, int]] = {}
    for i, (kind, p, off, _key) in enumerate(rec.events):
        if kind == "start":
            start[(p, off)] = i
        else:
            out[(p, off)] = (start[(p, off)], i)
    return out


def _sequential_in_offset_order(rec: Recorder, group: list[tuple[int, int]]) -> None:
    spans = _intervals(rec)
    ordered = sorted(group, key=lambda po: po[1])
    for a, b in itertools.pairwise(ordered):
        assert spans[a][1] < spans[b][0], f"{b} started before {a} ended"


def test_key_ordering_serialises_per_key_and_parallelises_across_keys() -> None:
    spec = _spec("key")
    items = [(0, off, b"k%d" % (off % 3)) for off in range(30)]
    rec = Recorder()
    asyncio.run(_run(HandlerPool(spec, rec), _envs(spec, items), rec))
    for k in range(3):
        _sequential_in_offset_order(rec, [(0, off) for off in range(30) if off % 3 == k])
    assert rec.peak == 3  # one per key, all keys at once


def test_same_key_in_different_partitions_is_not_serialised() -> None:
    spec = _spec("key")
    items = [(p, off, b"same") for p in range(4) for off in range(3)]
    rec = Recorder()
    asyncio.run(_run(HandlerPool(spec, rec), _envs(spec, items), rec))
    assert rec.peak == 4


def test_partition_ordering_runs_one_at_a_time_per_partition() -> None:
    spec = _spec("partition")
    items = [(p, off, b"k%d" % off) for p in range(3) for off in range(10)]
    rec = Recorder()
    asyncio.run(_run(HandlerPool(spec, rec), _envs(spec, items), rec))
    for p in range(3):
        _sequential_in_offset_order(rec, [(p, off) for off in range(10)])
    assert rec.peak == 3


def test_unordered_runs_up_to_concurrency_and_completes_out_of_order() -> None:
    spec = _spec("unordered", concurrency=8)
    # The first record is slow: later ones must finish before it.
    rec = Recorder(delay={0: 0.2})
    items = [(0, off, b"k") for off in range(40)]
    asyncio.run(_run(HandlerPool(spec, rec), _envs(spec, items), rec))
    assert rec.peak == 8
    ends = [off for kind, _p, off, _k in rec.events if kind == "end"]
    assert ends[-1] == 0


def test_key_lane_slow_head_blocks_only_its_key() -> None:
    spec = _spec("key")
    rec = Recorder(delay={0: 0.3})
    items = [(0, 0, b"slow"), (0, 1, b"slow"), (0, 2, b"fast"), (0, 3, b"fast")]
    asyncio.run(_run(HandlerPool(spec, rec), _envs(spec, items), rec))
    ends = [off for kind, _p, off, _k in rec.events if kind == "end"]
    assert ends.index(3) < ends.index(0) < ends.index(1)


def test_revoked_partition_records_are_skipped_and_release_their_lane() -> None:
    spec = _spec("partition")
    skipped: list[int] = []
    rec = Recorder(delay={0: 0.05})
    envs = _envs(spec, [(0, off, None) for off in range(5)])

    async def main() -> None:
        pool = HandlerPool(spec, rec, on_skip=lambda e: skipped.append(e.offset))
        pool.start()
        for env in envs:
            pool.submit(env)
        await asyncio.sleep(0.01)  # offset 0 is running
        envs[0].state.revoked = True
        await asyncio.sleep(0.2)
        await pool.stop()
        assert pool.queued == 0

    asyncio.run(main())
    assert [e[2] for e in rec.events if e[0] == "start"] == [0]
    assert skipped == [1, 2, 3, 4]


@pytest.mark.parametrize("limit", [1, 3])
def test_global_limit_bounds_running_tasks(limit: int) -> None:
    spec = _spec("unordered", concurrency=10)
    rec = Recorder()

    async def main() -> None:
        pool = HandlerPool(spec, rec, global_limit=asyncio.Semaphore(limit))
        await _run(pool, _envs(spec, [(0, off, None) for off in range(20)]), rec)

    asyncio.run(main())
    assert rec.peak == limit


def test_record_waiting_for_the_global_limit_is_skipped_once_revoked() -> None:
    # A worker that took a record off the queue and waits for a global slot must
    # re-check the revocation: the partition's new owner runs the record.
    spec = _spec("unordered", concurrency=2)
    rec = Recorder(delay={0: 0.1})
    skipped: list[int] = []
    envs = _envs(spec, [(0, 0, None), (0, 1, None)])

    async def main() -> None:
        pool = HandlerPool(
            spec, rec, global_limit=asyncio.Semaphore(1), on_skip=lambda e: skipped.append(e.offset)
        )
        pool.start()
        for env in envs:
            pool.submit(env)
        await asyncio.sleep(0.02)  # 0 runs, 1 waits for the slot
        envs[0].state.revoked = True
        await asyncio.sleep(0.2)
        await pool.stop()

    asyncio.run(main())
    assert [e[2] for e in rec.events if e[0] == "start"] == [0]
    assert skipped == [1]
