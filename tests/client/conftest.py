"""Helpers for client tests: a word-count handler on unique topics, an in-process
worker, and reading a topic back without a consumer group."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from framework import Reject, Settings, TaskContext, Worker, handler
from framework.commands.topics import topic_specs
from framework.kafka.admin import KafkaAdmin
from framework.registry import HandlerRegistry, spec_of
from framework.serde import SchemaStore


@pytest.fixture(scope="session")
def store() -> SchemaStore:
    return SchemaStore.load(["schemas"])


def word_count_registry(topic: str, *, wire: str = "avro") -> HandlerRegistry:
    """A word-count handler on ``topic``; the text ``"fail"`` raises, ``"reject"`` rejects."""

    async def count(task: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
        if task["text"] == "fail":
            raise ValueError("asked to fail")
        if task["text"] == "reject":
            raise Reject("asked to reject")
        words = task["text"].split()
        return {"words": len(words), "distinct": len(set(words)), "top": [ctx.task_id]}

    fn = handler(
        topic=topic,
        schema="ktf.examples.WordCountTask",
        result_schema="ktf.examples.WordCountResult",
        ordering="unordered",
        concurrency=1000,
        wire_format=wire,
    )(count)
    spec = spec_of(fn)
    assert spec is not None
    return HandlerRegistry([spec])


def settings_for(bootstrap: str, unique: str) -> Settings:
    return Settings(
        bootstrap_servers=bootstrap,
        group_id=f"{unique}-g",
        client_id=unique,
        metrics_port=0,
        max_in_flight=2000,
        topic_partitions=3,
    )


def create_topics(settings: Settings, registry: HandlerRegistry, partitions: int = 3) -> None:
    KafkaAdmin(settings).ensure_topics(topic_specs(registry, partitions, 1))


@contextlib.asynccontextmanager
async def running_worker(
    settings: Settings, registry: HandlerRegistry, store: SchemaStore
) -> AsyncIterator[Worker]:
    async with Worker(settings, registry, schemas=store) as worker:
        yield worker


def read_topic(bootstrap: str, topic: str, expect: int, timeout: float = 30.0) -> list[Any]:
    """Every record of ``topic`` from the beginning; waits until ``expect`` arrived
    (or ``timeout``), then reads briefly on to catch any extra record."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False}
    )
    try:
        md = consumer.list_topics(topic, timeout=10)
        parts = sorted(md.topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, 0) for p in parts])
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        extra_until: float | None = None
        while time.monotonic() < deadline:
            for msg in consumer.consume(500, 0.2):
                if msg.error() is None:
                    out.append(msg)
            if len(out) >= expect and extra_until is None:
                extra_until = time.monotonic() + 0.5
            if extra_until is not None and time.monotonic() >= extra_until:
                break
        return out
    finally:
        consumer.close()


def word_count_setup(bootstrap: str, unique: str) -> tuple[str, HandlerRegistry, Settings]:
    """A test's own word-count topic, its handler registry and settings, topics created."""
    topic = f"{unique}.tasks"
    registry = word_count_registry(topic)
    settings = settings_for(bootstrap, unique)
    create_topics(settings, registry)
    return topic, registry, settings
