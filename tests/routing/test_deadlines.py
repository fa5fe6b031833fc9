"""Deadlines and timeouts against the real broker: expired never starts, overruns are cancelled."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from framework import headers as h
from framework.registry import handler
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


def test_past_deadline_never_starts_and_overruns_are_cancelled_and_reported(
    kafka_bootstrap: str, unique: str
) -> None:
    started: list[str] = []
    cancelled: list[str] = []

    @handler(
        topic=f"{unique}.tasks",
        schema="ktf.examples.WordCountTask",
        reply_topic=f"{unique}.reply",
        ordering="unordered",
        timeout=0.5,
    )
    async def slow(t: dict[str, Any], ctx: TaskContext) -> None:
        started.append(ctx.task_id)
        try:
            await asyncio.sleep(float(t["text"]))
        except asyncio.CancelledError:
            cancelled.append(ctx.task_id)
            raise

    registry = registry_of(slow)
    ensure_topics(kafka_bootstrap, registry)
    now = int(time.time() * 1000)
    produce(
        kafka_bootstrap,
        f"{unique}.tasks",
        [
            # Deadline already passed: must never reach the handler.
            (b"a", task("0"), {h.TASK_ID: "expired", h.DEADLINE: str(now - 1)}),
            # Runs past its 0.5 s handler timeout.
            (b"b", task("30"), {h.TASK_ID: "timeout"}),
            (b"d", task("0"), {h.TASK_ID: "quick"}),
        ],
    )
    replies = Reader(kafka_bootstrap, f"{unique}.reply")
    dlq = Reader(kafka_bootstrap, f"{unique}.tasks.dlq")

    async def body(worker: Worker) -> None:
        await replies.await_for(3, timeout=30)
        await dlq.await_for(1, timeout=10)

    run_with_worker(settings(kafka_bootstrap, unique), registry, body)
    by_id = {hdrs(m)[h.TASK_ID]: hdrs(m) for m in replies.records}
    assert "expired" not in started
    assert by_id["expired"][h.STATUS] == h.STATUS_EXPIRED
    assert by_id["expired"][h.ERROR_TYPE] == "TaskExpired"
    assert by_id["timeout"][h.STATUS] == h.STATUS_ERROR
    assert by_id["timeout"][h.ERROR_TYPE] == "TaskTimeout"
    assert "timeout" in cancelled
    assert by_id["quick"][h.STATUS] == h.STATUS_OK
    # The timeout task has no retry tiers: it is dead-lettered with its cause.
    assert [hdrs(m)[h.TASK_ID] for m in dlq.records] == ["timeout"]
    assert hdrs(dlq.records[0])[h.ERROR_TYPE] == "TaskTimeout"
    replies.close()
    dlq.close()


def test_running_task_past_its_deadline_is_cancelled_and_reported_expired(
    kafka_bootstrap: str, unique: str
) -> None:
    cancelled: list[float] = []

    @handler(
        topic=f"{unique}.tasks",
        schema="ktf.examples.WordCountTask",
        reply_topic=f"{unique}.reply",
    )
    async def sleeper(t: dict[str, Any], ctx: TaskContext) -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(time.time())
            raise

    registry = registry_of(sleeper)
    ensure_topics(kafka_bootstrap, registry)
    replies = Reader(kafka_bootstrap, f"{unique}.reply")
    deadline: list[int] = []

    async def body(worker: Worker) -> None:
        deadline.append(int(time.time() * 1000) + 1_500)
        await asyncio.to_thread(
            produce,
            kafka_bootstrap,
            f"{unique}.tasks",
            [(b"k", task(), {h.TASK_ID: "late", h.DEADLINE: str(deadline[0])})],
        )
        await replies.await_for(1, timeout=20)

    run_with_worker(settings(kafka_bootstrap, unique), registry, body)
    reply = hdrs(replies.records[0])
    assert reply[h.STATUS] == h.STATUS_EXPIRED
    assert reply[h.ERROR_TYPE] == "TaskExpired"
    assert len(cancelled) == 1
    assert cancelled[0] * 1000 >= deadline[0] - 5  # not cancelled early
    assert cancelled[0] * 1000 < deadline[0] + 1_000
    replies.close()
