"""Group options against the real broker: KIP-848 protocol and static membership."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from confluent_kafka import ConsumerGroupType
from confluent_kafka.admin import AdminClient

from framework.registry import HandlerRegistry, handler, spec_of
from framework.runtime.worker import Worker
from framework.serde import SchemaStore
from tests.runtime._helpers import (
    ROOT,
    ReplyReader,
    create_topics,
    inprocess_settings,
    produce_tasks,
)
from tests.runtime.handlers_fixture import RESULT_SCHEMA, TASK_SCHEMA

pytestmark = pytest.mark.broker


def _registry(topic: str, done: list[int]) -> HandlerRegistry:
    async def fn(task: dict[str, Any], ctx: Any) -> dict[str, Any]:
        done.append(task["n"])
        now = time.time()
        return {
            "n": task["n"],
            "pid": 0,
            "offset": ctx.offset,
            "partition": ctx.partition,
            "started": now,
            "ended": now,
        }

    spec = spec_of(handler(topic=topic, schema=TASK_SCHEMA, result_schema=RESULT_SCHEMA)(fn))
    assert spec is not None
    return HandlerRegistry([spec])


async def _until(cond: Any, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


def _describe(bootstrap: str, group: str) -> Any:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    return admin.describe_consumer_groups([group], request_timeout=10)[group].result(15)


def test_kip848_consumer_protocol_consumes_and_replies(kafka_bootstrap: str, unique: str) -> None:
    topic, group = f"{unique}.tasks", f"{unique}-g"
    create_topics(kafka_bootstrap, {topic: 3, f"{topic}.reply": 1, f"{topic}.dlq": 1})
    produce_tasks(kafka_bootstrap, topic, [(b"k%d" % n, n, 0) for n in range(60)])
    done: list[int] = []

    async def main() -> Any:
        settings = inprocess_settings(kafka_bootstrap, group, group_protocol="consumer")
        worker = Worker(
            settings, _registry(topic, done), schemas=SchemaStore.load([ROOT / "schemas"])
        )
        async with worker:
            await _until(lambda: len(done) >= 60, 45, "60 tasks")
            return _describe(kafka_bootstrap, group)

    desc = asyncio.run(main())
    assert sorted(done) == list(range(60))
    # The broker reports the group under the new protocol.
    assert desc.type == ConsumerGroupType.CONSUMER, desc.type
    reader = ReplyReader(kafka_bootstrap, f"{topic}.reply")
    try:
        assert len(reader.wait_distinct(60, timeout=20)) == 60
    finally:
        reader.close()


def test_static_membership_instance_id_is_applied(kafka_bootstrap: str, unique: str) -> None:
    topic, group = f"{unique}.tasks", f"{unique}-g"
    create_topics(kafka_bootstrap, {topic: 2, f"{topic}.reply": 1, f"{topic}.dlq": 1})
    produce_tasks(kafka_bootstrap, topic, [(b"k", 1, 0)])
    done: list[int] = []

    async def main() -> Any:
        settings = inprocess_settings(kafka_bootstrap, group, group_instance_id="pod-7")
        worker = Worker(
            settings, _registry(topic, done), schemas=SchemaStore.load([ROOT / "schemas"])
        )
        async with worker:
            await _until(lambda: done == [1], 30, "the task")
            return _describe(kafka_bootstrap, group)

    desc = asyncio.run(main())
    assert desc.type == ConsumerGroupType.CLASSIC, desc.type
    assert [m.group_instance_id for m in desc.members] == ["pod-7"]
