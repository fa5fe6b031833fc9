"""`ktf lag`, `ktf groups`, `ktf top` against the real broker (exact numbers)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from framework.cli import main
from framework.observability.health import HealthServer, HealthState
from framework.observability.metrics import WorkerMetrics

pytestmark = pytest.mark.broker

# Records produced per partition, and the offsets the group commits (None: no commit).
PRODUCED = {0: 10, 1: 7, 2: 4}
COMMITTED = {0: 6, 1: 7, 2: None}


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    fut = admin.create_topics([NewTopic(name, partitions, 1)], operation_timeout=20)[name]
    fut.result(timeout=30)


def produce(bootstrap: str, topic: str, per_partition: dict[int, int]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    for partition, count in per_partition.items():
        for i in range(count):
            producer.produce(topic, value=f"{partition}-{i}".encode(), partition=partition)
    assert producer.flush(30) == 0


def commit(bootstrap: str, group: str, offsets: dict[tuple[str, int], int]) -> None:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        tps = [TopicPartition(t, p, off) for (t, p), off in offsets.items()]
        result = consumer.commit(offsets=tps, asynchronous=False)
        assert all(tp.error is None for tp in result)
    finally:
        consumer.close()


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def backlog(kafka_bootstrap: str, unique: str) -> tuple[str, str]:
    """A 3-partition topic with PRODUCED records and a group that committed COMMITTED."""
    topic, group = f"{unique}.lag", f"{unique}-lag-group"
    create_topic(kafka_bootstrap, topic, len(PRODUCED))
    produce(kafka_bootstrap, topic, PRODUCED)
    commit(
        kafka_bootstrap,
        group,
        {(topic, p): off for p, off in COMMITTED.items() if off is not None},
    )
    return topic, group


def test_lag_json_matches_committed_and_end_offsets_exactly(
    kafka_bootstrap: str, backlog: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    topic, group = backlog
    code, out, err = run_cli(
        capsys, "lag", "--group", group, "--json", "--bootstrap-servers", kafka_bootstrap
    )
    assert code == 0, err
    data = json.loads(out)
    rows = {r["partition"]: r for r in data["partitions"]}
    assert set(rows) == set(PRODUCED)
    for p, produced in PRODUCED.items():
        assert rows[p]["topic"] == topic
        assert rows[p]["end"] == produced
        assert rows[p]["start"] == 0
        assert rows[p]["committed"] == COMMITTED[p]
    assert rows[0]["lag"] == 4
    assert rows[1]["lag"] == 0
    # No committed offset: the whole retained log is lag, and the row says so.
    assert rows[2]["lag"] == 4
    assert rows[2]["note"] == "no commit"
    assert data["total_lag"] == 8
    assert data["group"] == group


def test_lag_table_has_total_and_explains_missing_commits(
    kafka_bootstrap: str, backlog: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    topic, group = backlog
    code, out, err = run_cli(
        capsys, "lag", "--group", group, "--topic", topic, "--bootstrap-servers", kafka_bootstrap
    )
    assert code == 0, err
    assert f"TOTAL lag of group '{group}': 8" in out
    assert "no committed offset: lag = end - start (4 - 0)" in out


def test_lag_for_unknown_group_is_one_line_naming_it(
    kafka_bootstrap: str, unique: str, capsys: pytest.CaptureFixture[str]
) -> None:
    group = f"{unique}-missing"
    code, out, err = run_cli(
        capsys, "lag", "--group", group, "--bootstrap-servers", kafka_bootstrap, "--timeout", "5"
    )
    assert code == 2
    assert out == ""
    assert err.strip().count("\n") == 0
    assert group in err and "does not exist" in err


def test_lag_for_unknown_topic_names_it(
    kafka_bootstrap: str, backlog: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, group = backlog
    code, _, err = run_cli(
        capsys,
        "lag",
        "--group",
        group,
        "--topic",
        f"{group}.nope",
        "--bootstrap-servers",
        kafka_bootstrap,
    )
    assert code == 2
    assert f"topic '{group}.nope' does not exist" in err


def test_lag_against_no_broker_fails_within_the_timeout(
    capsys: pytest.CaptureFixture[str], unused_tcp_port: int
) -> None:
    started = time.monotonic()
    code, _, err = run_cli(
        capsys,
        "lag",
        "--group",
        "g",
        "--bootstrap-servers",
        f"127.0.0.1:{unused_tcp_port}",
        "--timeout",
        "2",
    )
    assert code == 2
    assert "ktf: error:" in err and "'g'" in err
    assert time.monotonic() - started < 10


@pytest.fixture
def live_member(kafka_bootstrap: str, unique: str) -> Iterator[tuple[str, str, str]]:
    """A consumer that has joined its group and owns every partition of a topic."""
    topic, group, client_id = f"{unique}.live", f"{unique}-live-group", f"{unique}-client"
    create_topic(kafka_bootstrap, topic, 3)
    assigned: list[Any] = []
    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": group,
            "client.id": client_id,
            "session.timeout.ms": 10000,
        }
    )
    consumer.subscribe([topic], on_assign=lambda c, parts: assigned.extend(parts))
    deadline = time.monotonic() + 30
    while not assigned and time.monotonic() < deadline:
        consumer.poll(0.2)
    assert assigned, "consumer never got an assignment"
    try:
        yield topic, group, client_id
    finally:
        consumer.close()


def test_groups_describe_shows_live_member_host_and_assignment(
    kafka_bootstrap: str, live_member: tuple[str, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    topic, group, client_id = live_member
    code, out, err = run_cli(
        capsys, "groups", "describe", group, "--json", "--bootstrap-servers", kafka_bootstrap
    )
    assert code == 0, err
    desc = json.loads(out)
    assert desc["group_id"] == group
    assert desc["state"] == "stable"
    (member,) = desc["members"]
    assert member["client_id"] == client_id
    assert member["host"]  # e.g. 127.0.0.1
    assert sorted(tuple(tp) for tp in member["assignment"]) == [(topic, 0), (topic, 1), (topic, 2)]

    code, out, err = run_cli(
        capsys, "groups", "describe", group, "--bootstrap-servers", kafka_bootstrap
    )
    assert code == 0, err
    assert f"{topic}[0,1,2]" in out and client_id in out

    code, out, err = run_cli(capsys, "groups", "--json", "--bootstrap-servers", kafka_bootstrap)
    assert code == 0, err
    listed = {g["group_id"]: g for g in json.loads(out)}
    assert listed[group]["members"] == 1
    assert listed[group]["state"] == "stable"


def test_groups_describe_unknown_group_names_it(
    kafka_bootstrap: str, unique: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(
        capsys, "groups", "describe", f"{unique}-nobody", "--bootstrap-servers", kafka_bootstrap
    )
    assert code == 2
    assert f"consumer group '{unique}-nobody' does not exist" in err


def test_top_prints_plain_lines_with_rates_and_broker_lag(
    kafka_bootstrap: str, backlog: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, group = backlog
    metrics = WorkerMetrics()
    health = HealthState()
    metrics.in_flight("resize", 3)
    metrics.set_buffered(12)
    metrics.set_paused(1)
    with HealthServer(0, metrics.registry, health, host="127.0.0.1") as srv:
        # Counters keep rising while top samples them: rate must be > 0 on line 2.
        import threading

        stop = threading.Event()

        def work() -> None:
            while not stop.is_set():
                metrics.task_finished("resize", "t", "ok", 0.001, None)
                time.sleep(0.005)

        worker = threading.Thread(target=work, daemon=True)
        worker.start()
        try:
            code, out, err = run_cli(
                capsys,
                "top",
                "--group",
                group,
                "--metrics-url",
                f"{srv.url}/metrics",
                "--interval",
                "0.3",
                "--iterations",
                "2",
                "--bootstrap-servers",
                kafka_bootstrap,
            )
        finally:
            stop.set()
            worker.join(5)
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 2  # not a TTY: one plain line per refresh, no screen control codes
    assert "\x1b" not in out
    for line in lines:
        assert "lag=8" in line
        assert "in_flight=3" in line and "buffered=12" in line and "paused=1" in line
        assert "workers=1/1" in line
    assert "rate=-" in lines[0]  # no previous sample yet
    rate = float(lines[1].split("rate=", 1)[1].split("/s", 1)[0])
    assert rate > 0
