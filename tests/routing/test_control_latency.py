"""The control follower hands a cancel over as soon as it is fetched, not when a batch fills."""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any

import pytest
from confluent_kafka import Producer

from framework.config import Settings
from framework.routing.control import ACTION_CANCEL, ControlFollower, encode_control
from tests._kafka import create_topics

pytestmark = pytest.mark.broker

COMMANDS = 15
#: With a batch-filling consume(100, 0.1) each command waited 0-100 ms (median ~50 ms).
MEDIAN_BOUND = 0.025


def test_an_idle_follower_reports_a_cancel_within_milliseconds(
    kafka_bootstrap: str, unique: str
) -> None:
    topic = f"{unique}.control"
    create_topics(kafka_bootstrap, [topic], partitions=1)
    arrived: dict[str, float] = {}
    got = threading.Condition()

    def on_command(record: dict[str, Any]) -> None:
        with got:
            arrived[record["task_id"]] = time.perf_counter()
            got.notify_all()

    settings = Settings(bootstrap_servers=kafka_bootstrap, group_id=unique, metrics_port=0)
    follower = ControlFollower(settings, on_command, window=60.0, topic=topic)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 0})
    waits: list[float] = []
    follower.start()
    try:
        assert follower.ready.wait(30), "the follower never assigned its topic"
        for i in range(COMMANDS + 1):
            time.sleep(0.03)  # the follower is idle, waiting in its fetch
            task_id = f"{unique}-{i}"
            sent = time.perf_counter()
            producer.produce(topic, encode_control(ACTION_CANCEL, task_id), key=task_id.encode())
            producer.poll(0)
            with got:
                assert got.wait_for(lambda t=task_id: t in arrived, 10), f"{task_id} never arrived"
            if i:  # the first one also waits for the follower's first fetch
                waits.append(arrived[task_id] - sent)
    finally:
        follower.stop()
        producer.flush(5)
    median = statistics.median(waits)
    all_ms = ", ".join(f"{w * 1e3:.1f}" for w in sorted(waits))
    assert median < MEDIAN_BOUND, f"median {median * 1e3:.1f} ms; all (ms): {all_ms}"
