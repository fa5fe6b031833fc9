"""Small broker helpers for the failure-routing tests: topics, producing, reading back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from framework import headers as h
from framework.commands.topics import topic_specs
from framework.config import Settings
from framework.kafka.admin import KafkaAdmin
from framework.registry import HandlerRegistry, spec_of
from framework.runtime.worker import Worker
from framework.serde import SchemaStore

STORE = SchemaStore.load(["schemas"])
WORDS = STORE.codec("ktf.examples.WordCountTask")


def settings(bootstrap: str, unique: str, **extra: Any) -> Settings:
    base: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "group_id": f"{unique}-g",
        "metrics_port": 0,
        "commit_interval": 0.2,
        "drain_timeout": 5.0,
    }
    base.update(extra)
    return Settings(**base)


def registry_of(*fns: Any) -> HandlerRegistry:
    return HandlerRegistry([s for fn in fns if (s := spec_of(fn)) is not None])


def ensure_topics(bootstrap: str, registry: HandlerRegistry, partitions: int = 1) -> None:
    KafkaAdmin(Settings(bootstrap_servers=bootstrap)).ensure_topics(
        topic_specs(registry, partitions, 1)
    )


def produce(
    bootstrap: str,
    topic: str,
    records: Iterable[tuple[bytes | None, bytes | None, dict[str, str]]],
    partition: int | None = None,
) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for key, value, hdrs in records:
        kwargs: dict[str, Any] = {"key": key, "headers": h.encode(hdrs)}
        if partition is not None:
            kwargs["partition"] = partition
        p.produce(topic, value, **kwargs)
    assert p.flush(30) == 0


def task(text: str = "a b c") -> bytes:
    return WORDS.encode({"text": text, "lowercase": True})


class Reader:
    """Reads a topic from the beginning (assign, no group) and keeps what it saw."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.records: list[Any] = []
        self._c = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"reader-{topic}",
                "enable.auto.commit": False,
            }
        )
        md = self._c.list_topics(topic, timeout=10)
        parts = sorted(md.topics[topic].partitions)
        self._c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])

    def poll(self, timeout: float = 0.2) -> list[Any]:
        got = [m for m in self._c.consume(500, timeout) if m.error() is None]
        self.records.extend(got)
        return got

    def wait_for(self, n: int, timeout: float) -> list[Any]:
        """Until at least ``n`` records were read (fails the test after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while len(self.records) < n and time.monotonic() < deadline:
            self.poll()
        assert len(self.records) >= n, f"{self.topic}: {len(self.records)} of {n} records"
        return self.records

    async def await_for(self, n: int, timeout: float) -> list[Any]:
        deadline = time.monotonic() + timeout
        while len(self.records) < n and time.monotonic() < deadline:
            await asyncio.to_thread(self.poll, 0.2)
        assert len(self.records) >= n, f"{self.topic}: {len(self.records)} of {n} records"
        return self.records

    def close(self) -> None:
        self._c.close()


def hdrs(msg: Any) -> dict[str, str]:
    return h.to_dict(msg.headers())


def run_with_worker(
    s: Settings, registry: HandlerRegistry, body: Callable[[Worker], Awaitable[None]]
) -> Worker:
    async def main() -> Worker:
        async with Worker(s, registry, schemas=STORE) as worker:
            await body(worker)
        return worker

    return asyncio.run(main())
