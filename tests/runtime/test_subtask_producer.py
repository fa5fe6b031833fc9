"""Sub-tasks through a producer of their own when their linger differs from the replies'."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from framework import Settings, TaskContext, Worker, handler
from framework.commands.topics import topic_specs
from framework.kafka.admin import KafkaAdmin
from framework.registry import HandlerRegistry, spec_of
from framework.serde import SchemaStore
from tests._kafka import committed, produce

ROOT = Path(__file__).resolve().parents[2]
STORE = SchemaStore.load([ROOT / "schemas"])

pytestmark = pytest.mark.broker


def test_sub_tasks_with_their_own_linger_are_delivered_before_the_parent_commits(
    kafka_bootstrap: str, unique: str
) -> None:
    parent_topic, child_topic = f"{unique}.parent", f"{unique}.child"
    children: list[str] = []
    acked: list[float] = []

    @handler(topic=parent_topic, schema="ktf.examples.WordCountTask")
    async def parent(task: dict[str, Any], ctx: TaskContext) -> None:
        t0 = time.perf_counter()
        await ctx.submit(child_topic, {"text": task["text"] + " child", "lowercase": True})
        acked.append(time.perf_counter() - t0)

    @handler(topic=child_topic, schema="ktf.examples.WordCountTask")
    async def child(task: dict[str, Any], ctx: TaskContext) -> None:
        children.append(task["text"])

    p, c = spec_of(parent), spec_of(child)
    assert p is not None and c is not None
    registry = HandlerRegistry([p, c])
    settings = Settings(
        bootstrap_servers=kafka_bootstrap,
        group_id=f"{unique}-g",
        metrics_port=0,
        commit_interval=0.2,
        outcome_linger_ms=0,
        subtask_linger_ms=200,
    )
    KafkaAdmin(settings).ensure_topics(topic_specs(registry, 1, 1))
    codec = STORE.codec("ktf.examples.WordCountTask")
    produce(
        kafka_bootstrap,
        parent_topic,
        [(b"k", codec.encode({"text": f"t{i}", "lowercase": True}), {}) for i in range(3)],
    )

    async def scenario() -> None:
        async with Worker(settings, registry, schemas=STORE) as worker:
            producers = worker._producers
            assert producers is not None and producers.subtasks is not producers.outcomes
            deadline = time.monotonic() + 30
            while len(children) < 3:
                assert time.monotonic() < deadline, f"sub-tasks run: {children}"
                await asyncio.sleep(0.05)

    asyncio.run(scenario())
    assert sorted(children) == ["t0 child", "t1 child", "t2 child"]
    # The sub-task producer's own linger (200 ms) is what each ctx.submit waited for.
    assert min(acked) >= 0.15, acked
    assert committed(kafka_bootstrap, f"{unique}-g", parent_topic, 1) == {0: 3}
