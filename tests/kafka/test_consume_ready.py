"""consume_ready: never waits for a batch to fill, still returns full batches under load."""

from __future__ import annotations

import time
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from framework.kafka.consumer import consume_ready
from tests._kafka import create_topics, produce


class FakeConsumer:
    """Stands in for confluent_kafka.Consumer: a queue, and a log of consume calls."""

    def __init__(self, queued: list[int], arriving: list[int] | None = None) -> None:
        self.queued = list(queued)
        self.arriving = list(arriving or [])
        self.calls: list[tuple[int, float]] = []

    def consume(self, n: int, timeout: float) -> list[Any]:
        self.calls.append((n, timeout))
        if not self.queued and timeout > 0:
            # Blocking: what arrives meanwhile lands in the queue.
            self.queued, self.arriving = self.arriving, []
        out, self.queued = self.queued[:n], self.queued[n:]
        return out


def test_takes_what_is_queued_without_waiting() -> None:
    fake = FakeConsumer(queued=list(range(7)))
    assert consume_ready(fake, 500, 0.05) == list(range(7))  # type: ignore[arg-type]
    assert fake.calls == [(500, 0)]


def test_blocks_for_the_first_record_only_then_tops_up_without_waiting() -> None:
    fake = FakeConsumer(queued=[], arriving=[1, 2, 3])
    assert consume_ready(fake, 500, 0.05) == [1, 2, 3]  # type: ignore[arg-type]
    assert fake.calls == [(500, 0), (1, 0.05), (499, 0)]


def test_nothing_arrives_within_the_timeout() -> None:
    fake = FakeConsumer(queued=[])
    assert consume_ready(fake, 500, 0.05) == []  # type: ignore[arg-type]
    assert fake.calls == [(500, 0), (1, 0.05)]


def test_full_batches_under_load() -> None:
    fake = FakeConsumer(queued=list(range(1200)))
    assert len(consume_ready(fake, 500, 0.05)) == 500  # type: ignore[arg-type]
    assert fake.calls == [(500, 0)]


def test_a_batch_of_one_does_not_top_up() -> None:
    fake = FakeConsumer(queued=[], arriving=[1, 2])
    assert consume_ready(fake, 1, 0.05) == [1]  # type: ignore[arg-type]
    assert fake.calls == [(1, 0), (1, 0.05)]


@pytest.mark.broker
def test_on_the_broker_a_lone_record_is_returned_at_once_where_consume_waits_out_its_timeout(
    kafka_bootstrap: str, unique: str
) -> None:
    topic = f"{unique}.t"
    create_topics(kafka_bootstrap, [topic], partitions=1)
    produce(kafka_bootstrap, topic, [(b"k", b"v1", {}), (b"k", b"v2", {})])
    consumer = Consumer(
        {"bootstrap.servers": kafka_bootstrap, "group.id": unique, "enable.auto.commit": False}
    )
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        # Read v1 once the partition is fetched; v2 is then the only record left.
        deadline = time.monotonic() + 30
        while not consumer.consume(1, 0.5):
            assert time.monotonic() < deadline, "record never fetched"
        t0 = time.perf_counter()
        ready = consume_ready(consumer, 500, 2.0)
        took_ready = time.perf_counter() - t0
        consumer.seek(TopicPartition(topic, 0, 1))  # v2 again
        t0 = time.perf_counter()
        batch = consumer.consume(500, 2.0)
        took_batch = time.perf_counter() - t0
    finally:
        consumer.close()
    assert [m.value() for m in ready] == [b"v2"]
    assert [m.value() for m in batch] == [b"v2"]
    # consume(500, 2.0) holds the lone record until its timeout: the latency cause.
    assert took_batch >= 1.9, took_batch
    assert took_ready < 1.0, took_ready
