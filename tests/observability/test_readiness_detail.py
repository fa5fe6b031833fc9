"""/readyz says where the member stands; ktf_assigned_partitions counts what it owns."""

from __future__ import annotations

import asyncio
import time

import pytest

from framework import Worker
from framework.commands.topics import topic_specs
from framework.kafka.admin import KafkaAdmin
from framework.observability.health import HealthServer, HealthState
from framework.observability.metrics import WorkerMetrics
from framework.routing.retry import consumed_topics
from tests.observability.test_worker_observability import (
    STORE,
    get,
    registry_for,
    samples,
    settings_for,
)


def test_readyz_detail_tells_joining_idle_and_owning_apart() -> None:
    health = HealthState()
    with HealthServer(0, WorkerMetrics().registry, health, host="127.0.0.1") as srv:
        health.beat()
        health.set_ready(True)
        status, body = get(f"{srv.url}/readyz")
        assert (status, body.strip()) == (
            200,
            "ready: waiting for a partition assignment (joining the group)",
        )
        health.joined()
        assert get(f"{srv.url}/readyz")[1].strip() == "ready: member, no partitions assigned"
        health.set_assigned(1)
        assert get(f"{srv.url}/readyz")[1].strip() == "ready: member, 1 partition assigned"
        health.set_assigned(12)
        assert get(f"{srv.url}/readyz")[1].strip() == "ready: member, 12 partitions assigned"
        health.left("partitions lost, rejoining the group")
        assert get(f"{srv.url}/readyz")[1].strip() == "ready: partitions lost, rejoining the group"


@pytest.mark.broker
def test_members_say_how_many_partitions_they_own_and_gauges_agree(
    kafka_bootstrap: str, unique: str
) -> None:
    topic = f"{unique}.one"
    registry = registry_for(topic, [])
    settings = settings_for(kafka_bootstrap, unique, session_timeout_ms=10_000)
    KafkaAdmin(settings).ensure_topics(topic_specs(registry, 1, 1))
    # At least one partition per handler topic and tier (plus the scheduler's topics).
    expected = len(consumed_topics(registry))

    async def scenario() -> tuple[list[tuple[str, float]], list[str]]:
        async with (
            Worker(settings, registry, schemas=STORE, serve_http=True) as a,
            Worker(settings, registry, schemas=STORE, serve_http=True) as b,
        ):
            deadline = time.monotonic() + 60
            while True:
                bodies = [
                    (await asyncio.to_thread(get, f"http://127.0.0.1:{w.http_port}/readyz"))[1]
                    for w in (a, b)
                ]
                texts = sorted(t.strip() for t in bodies)
                # Both members own something and together everything they consume.
                total = sum(w.health.assigned for w in (a, b))
                if total >= expected and all("member, " in t for t in texts):
                    break
                assert time.monotonic() < deadline, f"readiness never settled: {texts}"
                await asyncio.sleep(0.2)
            gauges = []
            for w in (a, b):
                _, text = await asyncio.to_thread(get, f"http://127.0.0.1:{w.http_port}/metrics")
                (value,) = samples(text, "ktf_assigned_partitions").values()
                gauges.append((w.health.membership(), value))
            return gauges, [str(sum(w.health.assigned for w in (a, b)))]

    gauges, owned = asyncio.run(scenario())
    assert sum(value for _, value in gauges) == float(owned[0]) >= expected
    for text, value in gauges:
        unit = "partition" if value == 1 else "partitions"
        shown = "no partitions" if value == 0 else f"{value:g} {unit}"
        assert text == f"member, {shown} assigned"
