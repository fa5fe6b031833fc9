"""The scheduler in-process against the real broker: windows fired once, state kept,
a stale leader fenced, leadership kept through task-topic rebalances."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest

from framework.commands.schedules import rows
from framework.kafka.transactional import TransactionalProducer
from framework.registry import handler
from framework.runtime.context import TaskContext
from framework.runtime.worker import Worker
from framework.scheduling import Schedule
from framework.scheduling.state import transactional_id
from tests.routing.kafka_helpers import STORE, ensure_topics, registry_of, settings
from tests.scheduling.helpers import CommittedReader, state_of, windows_of

pytestmark = pytest.mark.broker


def _worker(bootstrap: str, unique: str, registry: Any, schedules: list[Schedule]) -> Worker:
    s = settings(bootstrap, unique, leader_session_timeout_ms=6000, session_timeout_ms=6000)
    return Worker(s, registry, schemas=STORE, schedules=schedules)


async def _until(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


def test_leader_fires_consecutive_windows_once_and_records_the_last(
    kafka_bootstrap: str, unique: str
) -> None:
    ran: list[str] = []

    @handler(topic=f"{unique}.tasks", schema="ktf.examples.WordCountTask")
    async def words(t: dict[str, Any], ctx: TaskContext) -> None:
        ran.append(ctx.task_id)

    registry = registry_of(words)
    ensure_topics(kafka_bootstrap, registry, partitions=2)
    tick = Schedule(
        name="tick", topic=f"{unique}.tasks", every="1s", payload={"text": "x", "lowercase": True}
    )

    async def main() -> Worker:
        async with _worker(kafka_bootstrap, unique, registry, [tick]) as worker:
            sched = worker._scheduling.scheduler  # type: ignore[union-attr]
            assert sched is not None
            await _until(lambda: len(sched.fired) >= 4, 30, "4 windows")
            await _until(lambda: len(ran) >= 4, 15, "4 runs")
            assert sched.leading and sched.epoch >= 1
            # What `ktf schedules list` shows while this worker leads.
            state = await asyncio.to_thread(state_of, kafka_bootstrap, f"{unique}-g")
            (row,) = await asyncio.to_thread(rows, worker.settings, [tick], state)
            assert row["epoch"] == sched.epoch and row["leader"] == sched.member
            assert row["last_fired"] != "-" and row["leader_client"]
        return worker

    worker = asyncio.run(main())
    sched = worker._scheduling.scheduler  # type: ignore[union-attr]
    assert sched is not None and not sched.leading
    dues = [d for _, d, _ in sched.fired]
    assert dues == sorted(dues) and len(set(dues)) == len(dues)
    assert {b - a for a, b in itertools.pairwise(dues)} == {1000}
    reader = CommittedReader(kafka_bootstrap, f"{unique}.tasks")
    reader.poll(2.0)
    assert windows_of(reader.task_ids(), "tick") == dues
    state = state_of(kafka_bootstrap, f"{unique}-g")
    assert state.windows["tick"].last_due_ms == dues[-1]
    assert state.windows["tick"].task_id == f"tick@{dues[-1]}"
    assert state.leader is not None and state.leader.epoch == sched.epoch
    fired = worker.metrics.registry.get_sample_value(
        "ktf_schedule_fired_total", {"schedule": "tick"}
    )
    assert fired == len(dues)
    assert worker.metrics.registry.get_sample_value("ktf_leader", {"group": f"{unique}-g"}) == 0
    reader.close()


def test_stale_leader_is_fenced_and_its_window_never_becomes_visible(
    kafka_bootstrap: str, unique: str
) -> None:
    @handler(topic=f"{unique}.tasks", schema="ktf.examples.WordCountTask")
    async def words(t: dict[str, Any], ctx: TaskContext) -> None:
        return None

    registry = registry_of(words)
    ensure_topics(kafka_bootstrap, registry)
    tick = Schedule(
        name="tick", topic=f"{unique}.tasks", every="1s", payload={"text": "x", "lowercase": True}
    )
    group = f"{unique}-g"

    async def main() -> tuple[list[tuple[str, int, str]], int]:
        async with _worker(kafka_bootstrap, unique, registry, [tick]) as worker:
            sched = worker._scheduling.scheduler  # type: ignore[union-attr]
            assert sched is not None
            await _until(lambda: len(sched.fired) >= 2, 30, "2 windows")
            # What a new leader does first: the same transactional id, a new epoch.
            usurper = TransactionalProducer(worker.settings, transactional_id(group))
            await asyncio.to_thread(usurper.init, 30.0)
            fenced_at = len(sched.fired)
            await _until(lambda: not sched.leading, 10, "the stale leader to step down")
            # It re-takes leadership only after a new assignment, which never comes here.
            await asyncio.sleep(2.5)
            assert not sched.leading
            usurper.close()
            return list(sched.fired), fenced_at

    fired, fenced_at = asyncio.run(main())
    assert len(fired) == fenced_at, "the fenced leader reported a window as fired"
    reader = CommittedReader(kafka_bootstrap, f"{unique}.tasks")
    reader.poll(2.0)
    assert windows_of(reader.task_ids(), "tick") == [d for _, d, _ in fired]
    reader.close()


def test_max_instances_skips_windows_while_a_run_is_unfinished(
    kafka_bootstrap: str, unique: str
) -> None:
    spans: list[tuple[float, float]] = []

    @handler(topic=f"{unique}.tasks", schema="ktf.examples.WordCountTask")
    async def slow(t: dict[str, Any], ctx: TaskContext) -> None:
        start = time.time()
        await asyncio.sleep(2.5)
        spans.append((start, time.time()))

    registry = registry_of(slow)
    ensure_topics(kafka_bootstrap, registry)
    tick = Schedule(
        name="tick",
        topic=f"{unique}.tasks",
        every="1s",
        max_instances=1,
        payload={"text": "x", "lowercase": True},
    )

    async def main() -> Worker:
        async with _worker(kafka_bootstrap, unique, registry, [tick]) as worker:
            await _until(lambda: len(spans) >= 3, 40, "3 finished runs")
        return worker

    worker = asyncio.run(main())
    spans.sort()
    overlaps = [(a, b) for a, b in itertools.pairwise(spans) if b[0] < a[1]]
    assert not overlaps, f"runs overlapped: {overlaps}"
    missed = worker.metrics.registry.get_sample_value(
        "ktf_schedule_missed_total", {"schedule": "tick", "reason": "max_instances"}
    )
    assert missed is not None and missed >= 2


def test_cli_runs_a_schedule_now_and_lists_it(
    kafka_bootstrap: str,
    unique: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import json

    from framework.cli import main as ktf

    topic = f"{unique}.tasks"
    monkeypatch.setenv("KTF_SCHED_TEST_TOPIC", topic)
    from tests.scheduling import fixture_handlers

    if topic != fixture_handlers.TOPIC:
        pytest.skip("fixture module was imported with another topic")
    ensure_topics(kafka_bootstrap, registry_of(fixture_handlers.words))
    common = [
        "--handlers",
        "tests.scheduling.fixture_handlers",
        "--group",
        f"{unique}-g",
        "--bootstrap-servers",
        kafka_bootstrap,
    ]
    assert ktf(["schedules", "run", "hourly", *common]) == 0
    task_id = capsys.readouterr().out.strip()
    assert task_id.startswith("hourly@manual-")
    reader = CommittedReader(kafka_bootstrap, topic)
    reader.poll(2.0)
    assert reader.task_ids() == [task_id]
    assert dict(reader.records[0].headers())["ktf-schedule"] == b"hourly"
    reader.close()
    assert ktf(["schedules", "list", "--json", *common]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["name"] == "hourly" and row["expression"] == "every 1h"
    assert row["leader"] == "none" and row["last_fired"] == "-"
    assert row["next_due"].endswith(":00:00+00:00")
    assert ktf(["schedules", "run", "nope", *common]) == 2
    assert "no schedule named 'nope' (known: hourly)" in capsys.readouterr().err
    # ktf send --delay: the record carries ktf-not-before that far ahead.
    sent_at = time.time()
    send = ["send", topic, "--json", '{"text": "later", "lowercase": true}', "--delay", "90s"]
    assert ktf([*send, *common[:2], "--bootstrap-servers", kafka_bootstrap]) == 0
    delayed_id = capsys.readouterr().out.strip()
    reader = CommittedReader(kafka_bootstrap, topic)
    reader.poll(2.0)
    (rec,) = [r for r in reader.records if dict(r.headers())["ktf-task-id"] == delayed_id.encode()]
    not_before = int(dict(rec.headers())["ktf-not-before"])
    assert sent_at * 1000 + 90_000 <= not_before <= time.time() * 1000 + 90_000
    reader.close()
