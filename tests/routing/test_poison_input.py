"""Poison input against the real broker: dead-lettered with precise causes, the worker goes on."""

from __future__ import annotations

import random
from typing import Any

import pytest

from framework import headers as h
from framework.registry import handler
from framework.routing.policy import RetryPolicy
from framework.runtime import execution
from framework.runtime.context import TaskContext
from framework.runtime.worker import Worker
from tests.routing.kafka_helpers import (
    STORE,
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

LIMIT = 4_000


def test_1000_good_and_50_poison_records_1000_replies_50_precise_dead_letters(
    kafka_bootstrap: str, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(execution, "MAX_RECORD_BYTES", LIMIT)
    topic = f"{unique}.tasks"

    @handler(
        topic=topic,
        schema="ktf.examples.WordCountTask",
        reply_topic=f"{unique}.reply",
        ordering="unordered",
        retry=RetryPolicy(tiers=("1s",)),
    )
    async def count(t: dict[str, Any], ctx: TaskContext) -> None:
        assert isinstance(t["text"], str)

    registry = registry_of(count)
    ensure_topics(kafka_bootstrap, registry, partitions=3)
    divide = STORE.codec("ktf.examples.DivideTask")
    good = [(f"g{i}".encode(), task(f"word {i}"), {h.TASK_ID: f"good-{i}"}) for i in range(1000)]
    poison: list[tuple[bytes | None, bytes | None, dict[str, str]]] = []
    kinds: dict[str, str] = {}

    def add(kind: str, n: int, value: bytes | None) -> None:
        for i in range(n):
            tid = f"{kind}-{i}"
            kinds[tid] = kind
            poison.append((tid.encode(), value, {h.TASK_ID: tid}))

    add("garbage", 10, b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01")
    add("truncated", 10, task("a much longer text that gets cut")[:12])
    add("tombstone", 10, None)
    add("oversized", 10, task("x" * (LIMIT + 100)))
    add("wrong-schema", 5, divide.encode({"dividend": 2**40, "divisor": 3}))
    records = good + poison
    random.Random(7).shuffle(records)
    produce(kafka_bootstrap, topic, records)
    # Tier records whose original topic no worker here handles.
    no_handler = [
        (f"nh-{i}".encode(), task(), {h.TASK_ID: f"no-handler-{i}", h.ORIGINAL_TOPIC: "elsewhere"})
        for i in range(5)
    ]
    for tid in (r[2][h.TASK_ID] for r in no_handler):
        kinds[tid] = "no-handler"
    produce(kafka_bootstrap, f"{topic}.retry.1s", no_handler)

    replies = Reader(kafka_bootstrap, f"{unique}.reply")
    dead = Reader(kafka_bootstrap, f"{topic}.dlq")
    alive: list[bool] = []

    async def body(worker: Worker) -> None:
        await replies.await_for(1050, timeout=60)
        await dead.await_for(50, timeout=20)
        fetch = worker._fetch_task
        alive.append(fetch is not None and not fetch.done())

    run_with_worker(settings(kafka_bootstrap, unique), registry, body)
    assert alive == [True], "the fetch loop must still be running"
    statuses: dict[str, int] = {}
    for m in replies.records:
        statuses[hdrs(m)[h.STATUS]] = statuses.get(hdrs(m)[h.STATUS], 0) + 1
    assert statuses == {"ok": 1000, "error": 50}
    assert len(dead.records) == 50
    expected = {
        "garbage": ("DecodeError", "["),
        "truncated": ("DecodeError", "[truncated]"),
        "tombstone": ("DecodeError", "tombstone"),
        "oversized": ("RecordTooLarge", f"over the {LIMIT}-byte limit"),
        "wrong-schema": ("DecodeError", "cannot decode ktf.examples.WordCountTask"),
        "no-handler": ("NoHandler", "'elsewhere', which has no handler"),
    }
    seen_kinds: dict[str, int] = {}
    for m in dead.records:
        got = hdrs(m)
        kind = kinds[got[h.TASK_ID]]
        seen_kinds[kind] = seen_kinds.get(kind, 0) + 1
        error_type, text = expected[kind]
        assert got[h.ERROR_TYPE] == error_type, (kind, got)
        assert text in got[h.ERROR_MESSAGE], (kind, got[h.ERROR_MESSAGE])
        # The message names the source offset, which the original-* headers confirm.
        where = f"{got[h.ORIGINAL_TOPIC]}[{got[h.ORIGINAL_PARTITION]}]@{got[h.ORIGINAL_OFFSET]}"
        if kind == "no-handler":
            where = f"{topic}.retry.1s["  # no original-* of its own: the tier record
        assert where in got[h.ERROR_MESSAGE], (where, got[h.ERROR_MESSAGE])
        sent = next(r[1] for r in records + no_handler if r[2][h.TASK_ID] == got[h.TASK_ID])
        assert m.value() == sent, "dead letters keep the original bytes"
    assert seen_kinds == {
        "garbage": 10,
        "truncated": 10,
        "tombstone": 10,
        "oversized": 10,
        "wrong-schema": 5,
        "no-handler": 5,
    }
    replies.close()
    dead.close()
