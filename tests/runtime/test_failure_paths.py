"""Failure paths found in review: stray cancellations, re-assigned paused partitions,
undeliverable error replies, and shutdown while the broker is away."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from framework import Settings, TaskContext, Worker, handler
from framework.commands.topics import topic_specs
from framework.kafka.admin import KafkaAdmin
from framework.registry import HandlerRegistry, spec_of
from framework.serde import SchemaStore
from tests._kafka import committed, consume_all, headers_of, produce

ROOT = Path(__file__).resolve().parents[2]
STORE = SchemaStore.load([ROOT / "schemas"])
CODEC = STORE.codec("ktf.examples.WordCountTask")

pytestmark = pytest.mark.broker


def value(text: str) -> bytes:
    return CODEC.encode({"text": text, "lowercase": True})


def settings_for(bootstrap: str, unique: str, **extra: Any) -> Settings:
    base: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "group_id": f"{unique}-g",
        "metrics_port": 0,
        "commit_interval": 0.2,
        "schemas_dir": str(ROOT / "schemas"),
        "log_level": "WARNING",
    }
    base.update(extra)
    return Settings(**base)


def one(fn: Any) -> HandlerRegistry:
    spec = spec_of(fn)
    assert spec is not None
    return HandlerRegistry([spec])


async def until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def test_stray_cancellation_inside_a_handler_is_a_failure_not_a_dead_worker(
    kafka_bootstrap: str, unique: str
) -> None:
    topic = f"{unique}.stray"
    done: list[str] = []

    @handler(
        topic=topic,
        schema="ktf.examples.WordCountTask",
        result_schema="ktf.examples.WordCountResult",
        ordering="partition",
        concurrency=1,
    )
    async def victim(task: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
        if task["text"] == "cancel-me":
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            fut.cancel()
            await fut  # raises CancelledError, though nobody cancelled this task
        done.append(task["text"])
        return {"words": 1, "distinct": 1, "top": []}

    registry = one(victim)
    settings = settings_for(kafka_bootstrap, unique)
    KafkaAdmin(settings).ensure_topics(topic_specs(registry, 1, 1))
    produce(
        kafka_bootstrap,
        topic,
        [(b"k", value(t), {}) for t in ("cancel-me", "after-1", "after-2")],
    )

    async def scenario() -> None:
        async with Worker(settings, registry, schemas=STORE):
            await until(lambda: len(done) == 2, 30, "the records after the cancelled one")

    asyncio.run(scenario())
    dead = consume_all(kafka_bootstrap, [f"{topic}.dlq"], 1, timeout=10)
    assert [headers_of(m)["ktf-error-type"] for m in dead] == ["CancelledError"]
    assert committed(kafka_bootstrap, settings.group_id, topic, 1) == {0: 3}


def test_error_reply_that_cannot_be_delivered_does_not_stall_the_partition(
    kafka_bootstrap: str, unique: str
) -> None:
    topic = f"{unique}.noreply"
    done: list[str] = []

    @handler(topic=topic, schema="ktf.examples.WordCountTask", ordering="partition")
    async def picky(task: dict[str, Any], ctx: TaskContext) -> None:
        if task["text"] == "bad":
            raise ValueError("bad input")
        done.append(task["text"])

    registry = one(picky)
    settings = settings_for(kafka_bootstrap, unique)
    KafkaAdmin(settings).ensure_topics(topic_specs(registry, 1, 1))
    produce(
        kafka_bootstrap,
        topic,
        [
            # The error reply goes to a topic name Kafka refuses: it can never land.
            (b"k", value("bad"), {"ktf-reply-to": "not a valid topic!"}),
            (b"k", value("good"), {}),
        ],
    )

    async def scenario() -> None:
        async with Worker(settings, registry, schemas=STORE):
            await until(lambda: done == ["good"], 30, "the record after the failed one")
            await until(
                lambda: committed(kafka_bootstrap, settings.group_id, topic, 1) == {0: 2},
                15,
                "the commit to pass both records",
            )

    asyncio.run(scenario())
    dead = consume_all(kafka_bootstrap, [f"{topic}.dlq"], 1, timeout=10)
    assert len(dead) == 1 and headers_of(dead[0])["ktf-error-type"] == "ValueError"


@pytest.mark.timeout(120)
def test_paused_partition_revoked_and_reassigned_is_resumed(
    kafka_bootstrap: str, unique: str
) -> None:
    topic = f"{unique}.back"
    seen_a: list[str] = []
    seen_b: list[str] = []
    gate = asyncio.Event()

    def registry_for(seen: list[str], blocking: bool) -> HandlerRegistry:
        @handler(topic=topic, schema="ktf.examples.WordCountTask", ordering="partition")
        async def record(task: dict[str, Any], ctx: TaskContext) -> None:
            if blocking and task["text"].startswith("first"):
                await gate.wait()
            seen.append(task["text"])

        return one(record)

    common = {
        "partition_buffer_high": 3,
        "partition_buffer_low": 1,
        "revoke_timeout": 1.0,
        "session_timeout_ms": 6000,
    }
    settings_a = settings_for(kafka_bootstrap, unique, client_id="a", **common)
    settings_b = settings_for(kafka_bootstrap, unique, client_id="b", drain_timeout=2.0, **common)
    reg_a = registry_for(seen_a, blocking=True)
    KafkaAdmin(settings_a).ensure_topics(topic_specs(reg_a, 2, 1))
    # Enough records on both partitions that A pauses both while the first ones block.
    for p in (0, 1):
        produce(kafka_bootstrap, topic, [(b"k", value(f"first-{i}"), {}) for i in range(5)], p)

    async def scenario() -> None:
        worker_a = Worker(settings_a, reg_a, schemas=STORE)
        async with worker_a:
            await until(
                lambda: len({tp for e, tps in worker_a.events if e == "pause" for tp in tps}) == 2,
                20,
                "A to pause both partitions",
            )
            async with Worker(settings_b, registry_for(seen_b, blocking=False), schemas=STORE):
                await until(
                    lambda: any(e == "revoke" for e, _ in worker_a.events), 30, "A to give up one"
                )
                await until(lambda: len(seen_b) > 0, 20, "B to run the moved partition")
            # B left: its partition comes back to A, which had it paused before.
            await until(
                lambda: sum(1 for e, _ in worker_a.events if e == "assign") >= 2,
                30,
                "the partition to come back to A",
            )
            gate.set()
            for p in (0, 1):
                await asyncio.to_thread(
                    produce,
                    kafka_bootstrap,
                    topic,
                    [(b"k", value(f"later-{p}-{i}"), {}) for i in range(5)],
                    p,
                )
            await until(
                lambda: sum(1 for t in seen_a if t.startswith("later")) == 10,
                30,
                "A to consume new records on both partitions",
            )

    asyncio.run(scenario())


def test_handler_submits_a_sub_task_that_carries_its_trace(
    kafka_bootstrap: str, unique: str
) -> None:
    parent_topic, child_topic = f"{unique}.parent", f"{unique}.child"
    parents: list[str] = []
    children: list[tuple[str, str]] = []

    @handler(topic=parent_topic, schema="ktf.examples.WordCountTask")
    async def parent(task: dict[str, Any], ctx: TaskContext) -> None:
        parents.append(ctx.trace.trace_id)
        await ctx.submit(child_topic, {"text": task["text"] + " child", "lowercase": True})

    @handler(topic=child_topic, schema="ktf.examples.WordCountTask")
    async def child(task: dict[str, Any], ctx: TaskContext) -> None:
        children.append((task["text"], ctx.trace.trace_id))

    p, c = spec_of(parent), spec_of(child)
    assert p is not None and c is not None
    registry = HandlerRegistry([p, c])
    settings = settings_for(kafka_bootstrap, unique)
    KafkaAdmin(settings).ensure_topics(topic_specs(registry, 1, 1))
    produce(kafka_bootstrap, parent_topic, [(b"k", value("hello"), {})])

    async def scenario() -> None:
        async with Worker(settings, registry, schemas=STORE):
            await until(lambda: len(children) == 1, 30, "the sub-task to run")

    asyncio.run(scenario())
    assert children == [("hello child", parents[0])]
