"""`ktf top --once --json --group G` finds the group's live workers by itself."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from typing import Any

import pytest
from confluent_kafka import Producer

from framework import Worker
from framework.cli import main
from framework.commands.topics import topic_specs
from framework.kafka.admin import KafkaAdmin
from framework.observability.announce import (
    WORKERS_TOPIC,
    Announcement,
    announcement_key,
)
from framework.routing.retry import consumed_topics
from tests.observability.test_worker_observability import STORE, registry_for, settings_for

pytestmark = pytest.mark.broker


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _announce_by_hand(bootstrap: str, ann: Announcement) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(
        WORKERS_TOPIC, key=announcement_key(ann.group, ann.worker_id), value=ann.encode()
    )
    assert producer.flush(30) == 0


def _fake(group: str, worker_id: str, url: str, announced_at_ms: int, ttl_ms: int) -> Announcement:
    return Announcement(
        group=group,
        worker_id=worker_id,
        host="127.0.0.1",
        pid=1,
        client_id="ktf",
        instance_id=None,
        member_id=None,
        metrics_url=url,
        topics=(),
        started_at_ms=announced_at_ms,
        announced_at_ms=announced_at_ms,
        ttl_ms=ttl_ms,
    )


def test_top_once_json_lists_every_live_worker_of_the_group_without_metrics_urls(
    kafka_bootstrap: str, unique: str, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = f"{unique}.top"
    registry = registry_for(topic, [])
    group, other_group = f"{unique}-g", f"{unique}-other"
    common: dict[str, Any] = {
        "advertised_host": "127.0.0.1",
        "announce_interval": 1.0,
        "session_timeout_ms": 10_000,
    }
    mine = settings_for(kafka_bootstrap, unique, **common)
    KafkaAdmin(mine).ensure_topics(topic_specs(registry, 2, 1))
    expected = 2 * len(consumed_topics(registry))  # 2 partitions per consumed topic
    a = Worker(
        mine.replace(group_instance_id=f"{unique}-a"), registry, schemas=STORE, serve_http=True
    )
    b = Worker(
        mine.replace(group_instance_id=f"{unique}-b"), registry, schemas=STORE, serve_http=True
    )
    # A dynamic member that stops cleanly: its tombstone removes it.
    gone = Worker(mine, registry, schemas=STORE, serve_http=True)
    elsewhere = Worker(
        mine.replace(group_id=other_group, group_instance_id=f"{unique}-c"),
        registry,
        schemas=STORE,
        serve_http=True,
    )
    now = int(time.time() * 1000)
    # A SIGKILLed worker's last word, long expired; and one behind a dead address.
    _announce_by_hand(
        kafka_bootstrap, _fake(group, "killed", "http://127.0.0.1:1/metrics", now - 120_000, 5_000)
    )
    ghost_url = f"http://127.0.0.1:{_closed_port()}/metrics"
    _announce_by_hand(kafka_bootstrap, _fake(group, "ghost", ghost_url, now + 60_000, 120_000))

    async def scenario() -> dict[str, Any]:
        for w in (a, b, gone, elsewhere):
            await w.start()
        try:
            deadline = time.monotonic() + 60
            while not all(w._announcer and w._announcer.delivered for w in (a, b, gone, elsewhere)):
                assert time.monotonic() < deadline, "workers never announced themselves"
                await asyncio.sleep(0.1)
            await gone.stop()
            # Both remaining members own the topic's partitions before top looks.
            while a.health.assigned + b.health.assigned < expected:  # at least
                assert time.monotonic() < deadline, "partitions never assigned"
                await asyncio.sleep(0.1)
            capsys.readouterr()
            code = await asyncio.to_thread(
                main,
                [
                    "top",
                    "--once",
                    "--json",
                    "--group",
                    group,
                    "--interval",
                    "1.5",
                    "--bootstrap-servers",
                    kafka_bootstrap,
                ],
            )
            out, err = capsys.readouterr()
            assert code == 0, err
            return json.loads(out)
        finally:
            for w in (a, b, elsewhere):
                await w.stop()

    doc = asyncio.run(scenario())
    rows = {r["worker"]: r for r in doc["workers"]}
    assert set(rows) == {f"{unique}-a", f"{unique}-b", "ghost"}, rows
    for wid in (f"{unique}-a", f"{unique}-b"):
        row = rows[wid]
        assert row["status"] == "up", row
        assert row["member"] is True
        assert row["metrics_url"].startswith("http://127.0.0.1:")
        assert row["rate"] == 0.0  # two samples were taken: a rate, not "unknown"
        assert row["executor_saturation"] is None
    owned = sum(rows[w]["assigned_partitions"] for w in (f"{unique}-a", f"{unique}-b"))
    assert owned >= expected
    ghost = rows["ghost"]
    assert ghost["status"] == "unreachable" and ghost["member"] is False
    assert "refused" in ghost["error"].lower()
    assert doc["discovery"]["expired"] == ["killed"]
    assert doc["totals"]["workers_up"] == 2 and doc["totals"]["workers_total"] == 3
    assert doc["lag"]["runnable"] == 0 and doc["lag"]["retry_backlog"] == 0
