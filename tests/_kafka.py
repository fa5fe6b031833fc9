"""Small helpers for tests that talk to the real broker."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable
from typing import Any

from confluent_kafka import Consumer, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def create_topics(bootstrap: str, names: Iterable[str], partitions: int = 3) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names]
    )
    for fut in futures.values():
        fut.result(timeout=30)


def produce(
    bootstrap: str,
    topic: str,
    records: Iterable[tuple[bytes | None, bytes | None, dict[str, str]]],
    partition: int | None = None,
) -> int:
    """Produce (key, value, headers) tuples; returns how many were acknowledged."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    acked = 0
    failed: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        nonlocal acked
        if err is None:
            acked += 1
        else:
            failed.append(str(err))

    for key, value, headers in records:
        while True:
            try:
                producer.produce(
                    topic,
                    value,
                    key=key,
                    headers=[(k, v.encode()) for k, v in headers.items()],
                    on_delivery=on_delivery,
                    **({} if partition is None else {"partition": partition}),
                )
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(30) == 0, "records still undelivered after 30 s"
    assert not failed, failed[:3]
    return acked


def consume_all(
    bootstrap: str, topics: list[str], expected: int, timeout: float = 60.0
) -> list[Message]:
    """Read ``topics`` from the beginning (no group commits) until ``expected`` records."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{time.monotonic_ns()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    md = consumer.list_topics(timeout=10)
    tps = [TopicPartition(t, p, 0) for t in topics for p in md.topics[t].partitions]
    consumer.assign(tps)
    out: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < expected and time.monotonic() < deadline:
            for msg in consumer.consume(500, 0.2):
                if msg.error() is None:
                    out.append(msg)
        # A short grace period to catch records beyond the expected count.
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            out.extend(m for m in consumer.consume(500, 0.1) if m.error() is None)
    finally:
        consumer.close()
    return out


def headers_of(msg: Message) -> dict[str, str]:
    return {k: v.decode() for k, v in (msg.headers() or []) if v is not None}


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        tps = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        consumer.close()


def free_base_port(nodes: int = 1) -> int:
    """A base port whose ``2 * nodes`` consecutive ports (client + controller) are free now.

    Tests that start a private broker use it, so runs side by side never collide.
    """
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port < 64000 and all(_port_free(port + i) for i in range(1, 2 * nodes)):
            return port
    raise AssertionError("no free run of ports found")


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
