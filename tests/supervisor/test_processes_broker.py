"""``ktf worker --processes 2`` against the real broker: membership, crash restart, drain, metrics."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from tests.runtime._helpers import (
    ReplyReader,
    committed,
    create_topics,
    produce_tasks,
    spawn_worker,
    stop_process,
)

pytestmark = pytest.mark.broker


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:
        return 0, str(exc)


def _until(cond: Callable[[], Any], timeout: float, what: str, log: Path | None = None) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = cond()
        if value:
            return value
        time.sleep(0.1)
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:]) if log else ""
    pytest.fail(f"timed out after {timeout}s waiting for {what}\n{tail}")


def _events(log: Path, event: str) -> list[dict[str, Any]]:
    out = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("event") == event:
                out.append(rec)
    return out


def _sample(text: str, name: str, **labels: str) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
    return total


def _pod(
    bootstrap: str, topic: str, group: str, log: Path, *, env: dict[str, str], args: list[str]
) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    proc = spawn_worker(
        bootstrap,
        topic,
        group,
        args=["--processes", "2", "--metrics-port", str(port), *args],
        env=env,
        log_path=log,
    )
    _until(lambda: _get(port, "/readyz")[0] == 200, 60, "/readyz of the pod", log)
    return proc, port


def _wait_both_assigned(port: int, log: Path) -> None:
    """Until both children have had partitions assigned (the pod counts assign callbacks)."""

    def assigned() -> bool:
        text = _get(port, "/metrics")[1]
        return _sample(text, "ktf_rebalances_total", event="assign") >= 2

    _until(assigned, 45, "both children assigned", log)


def _children(log: Path, expected: int = 2) -> dict[int, int]:
    """process index -> pid of the children that reported ready (the latest per index)."""

    def ready() -> dict[int, int]:
        found = {int(r["process"]): int(r["pid"]) for r in _events(log, "worker process ready")}
        return found if len(found) >= expected else {}

    result: dict[int, int] = _until(ready, 30, f"{expected} children ready", log)
    return result


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes (its parent reaps it).
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_two_processes_are_two_group_members_with_ids_derived_from_the_pods(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    topic, group = f"{unique}.tasks", f"{unique}-g"
    create_topics(kafka_bootstrap, {topic: 4, f"{topic}.reply": 1, f"{topic}.dlq": 1})
    log = tmp_path / "pod.log"
    proc, _port = _pod(
        kafka_bootstrap,
        topic,
        group,
        log,
        env={"KTF_CLIENT_ID": "pod-a"},
        args=["--group-instance-id", "pod-a"],
    )
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    try:

        def two_members_with_partitions() -> Any:
            desc = admin.describe_consumer_groups([group], request_timeout=10)[group].result(15)
            members = desc.members
            owned = sum(len(m.assignment.topic_partitions) for m in members)
            return desc if len(members) == 2 and owned == 4 else None

        desc = _until(two_members_with_partitions, 45, "two members owning 4 partitions", log)
    finally:
        stop_process(proc)
    assert sorted(m.group_instance_id for m in desc.members) == ["pod-a-0", "pod-a-1"]
    assert sorted(m.client_id for m in desc.members) == ["pod-a-0-consumer", "pod-a-1-consumer"]
    pids = set(_children(log).values())
    assert len(pids) == 2 and os.getpid() not in pids


def test_pod_metrics_sum_the_task_counters_of_both_children(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    topic, group = f"{unique}.tasks", f"{unique}-g"
    n = 600
    create_topics(kafka_bootstrap, {topic: 6, f"{topic}.reply": 2, f"{topic}.dlq": 1})
    log = tmp_path / "pod.log"
    proc, port = _pod(kafka_bootstrap, topic, group, log, env={}, args=[])
    reader = ReplyReader(kafka_bootstrap, f"{topic}.reply")
    try:
        # Wait for both children to own partitions so that both take a share.
        _wait_both_assigned(port, log)
        produce_tasks(kafka_bootstrap, topic, [(b"k%d" % i, i, 0) for i in range(n)])
        assert len(reader.wait_distinct(n, timeout=60)) == n
        by_pid = Counter(r["pid"] for r in reader.replies)
        assert len(by_pid) == 2, f"one child did all the work: {by_pid}"

        def counted() -> float:
            text = _get(port, "/metrics")[1]
            return _sample(text, "ktf_tasks_total", outcome="ok") == len(reader.replies) and text

        text = _until(counted, 20, f"ktf_tasks_total == {len(reader.replies)}", log)
        # Each child's own metrics, as announced for ktf top, add up to the pod's.
        per_child = [_get(port, f"/processes/{i}/metrics") for i in range(2)]
        assert _get(port, "/processes/2/metrics")[0] == 404
    finally:
        stop_process(proc)
        reader.close()
    # The pod's figure is the sum of the two children's (each child counted its own share).
    assert _sample(text, "ktf_tasks_total", outcome="ok") == sum(by_pid.values())
    assert _sample(text, "ktf_task_duration_seconds_count") == sum(by_pid.values())
    assert [code for code, _ in per_child] == [200, 200]
    shares = sorted(_sample(body, "ktf_tasks_total", outcome="ok") for _, body in per_child)
    assert shares == sorted(by_pid.values())
    assert _sample(text, "ktf_worker_processes") == 2
    assert _sample(text, "ktf_worker_processes_running") == 2


def test_sigkill_of_one_child_restarts_it_and_loses_no_task(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    topic, group = f"{unique}.tasks", f"{unique}-g"
    n = 3_000
    create_topics(kafka_bootstrap, {topic: 6, f"{topic}.reply": 2, f"{topic}.dlq": 1})
    log = tmp_path / "pod.log"
    # Static membership (the chart's default): the restarted child takes its old
    # partitions back at once instead of waiting for the dead member's session.
    proc, port = _pod(
        kafka_bootstrap,
        topic,
        group,
        log,
        env={"KTF_TEST_CONCURRENCY": "10", "KTF_COMMIT_INTERVAL": "0.2"},
        args=["--group-instance-id", f"{unique}-pod"],
    )
    reader = ReplyReader(kafka_bootstrap, f"{topic}.reply")
    rng = random.Random(5)
    try:
        _wait_both_assigned(port, log)
        produce_tasks(
            kafka_bootstrap, topic, [(b"k%d" % i, i, rng.randint(0, 10)) for i in range(n)]
        )
        children = _children(log)
        victim_index, victim = 1, children[1]

        def victim_busy() -> bool:
            reader.poll(0.2)
            return sum(1 for r in reader.replies if r["pid"] == victim) >= 200

        _until(victim_busy, 60, "the victim child to process 200 tasks", log)
        os.kill(victim, signal.SIGKILL)
        # Between the crash and the replacement joining, the pod says who is missing.
        restarting = re.compile(r"process 1\b.*(restarting in|starting)")
        _until(
            lambda: (lambda r: r[0] == 503 and restarting.search(r[1]))(_get(port, "/readyz")),
            10,
            "/readyz to name the killed child as restarting",
            log,
        )
        seen = reader.wait_distinct(n, timeout=120)
        assert len(seen) == n, f"{n - len(seen)} tasks lost"
        _until(lambda: _get(port, "/readyz")[0] == 200, 30, "the pod ready again", log)
        metrics = _get(port, "/metrics")[1]
    finally:
        stop_process(proc)
        reader.close()
    exits = _events(log, "worker process exited; restarting it")
    assert [(e["process"], e["pid"], e["exit"]) for e in exits] == [
        (victim_index, victim, "killed by SIGKILL")
    ]
    assert exits[0]["restart_in_s"] == 1.0
    restarted = _events(log, "worker process restarted")
    assert [e["process"] for e in restarted] == [victim_index]
    assert restarted[0]["pid"] != victim
    assert _sample(metrics, "ktf_worker_process_restarts_total", process="1") == 1
    assert _sample(metrics, "ktf_worker_process_restarts_total", process="0") == 0
    # The replacement did work too.
    assert any(r["pid"] == restarted[0]["pid"] for r in reader.replies)


def test_sigterm_drains_both_children_and_exits_within_the_drain_timeout(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    topic, group = f"{unique}.tasks", f"{unique}-g"
    partitions, n, drain = 6, 3_000, 6.0
    create_topics(kafka_bootstrap, {topic: partitions, f"{topic}.reply": 1, f"{topic}.dlq": 1})
    log = tmp_path / "pod.log"
    proc, port = _pod(
        kafka_bootstrap,
        topic,
        group,
        log,
        env={"KTF_TEST_ORDERING": "unordered", "KTF_COMMIT_INTERVAL": "0.5"},
        args=["--drain-timeout", str(drain)],
    )
    reader = ReplyReader(kafka_bootstrap, f"{topic}.reply")
    rng = random.Random(3)
    try:
        _wait_both_assigned(port, log)
        pids = set(_children(log).values())
        produce_tasks(
            kafka_bootstrap, topic, [(b"k%d" % i, i, rng.randint(200, 1_500)) for i in range(n)]
        )

        def both_busy() -> bool:
            reader.poll(0.2)
            return {r["pid"] for r in reader.replies} == pids and len(reader.replies) >= 200

        _until(both_busy, 60, "both children to reply", log)
        text = _get(port, "/metrics")[1]
        assert _sample(text, "ktf_tasks_in_flight") > 0, "the test needs tasks in flight"
        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        rc = proc.wait(drain + 15)
        took = time.monotonic() - sent
    finally:
        stop_process(proc)
    while reader.poll(1.5):
        pass
    reader.close()
    print(f"\nSIGTERM: pod exit after {took:.2f}s (drain {drain}s), rc={rc}")
    assert rc == 0
    assert took <= drain + 3.0
    assert not [p for p in pids if _pid_alive(p)], "a child outlived the supervisor"
    stopped = _events(log, "worker stopped")
    assert sorted(e["worker_process"] for e in stopped) == [0, 1]
    assert len(reader.replies) < n, "the test needs tasks left over at SIGTERM"
    offsets = committed(kafka_bootstrap, group, topic, partitions)
    uncovered = [
        (r["partition"], r["offset"])
        for r in reader.replies
        if r["offset"] >= offsets[r["partition"]]
    ]
    assert not uncovered, f"finished tasks above the committed offsets: {uncovered[:5]}"


def test_second_signal_is_forwarded_and_the_pod_exits_at_once(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    topic, group = f"{unique}.tasks", f"{unique}-g"
    create_topics(kafka_bootstrap, {topic: 2, f"{topic}.reply": 1, f"{topic}.dlq": 1})
    log = tmp_path / "pod.log"
    proc, port = _pod(
        kafka_bootstrap,
        topic,
        group,
        log,
        env={"KTF_TEST_ORDERING": "unordered"},
        args=["--drain-timeout", "60"],
    )
    try:
        _wait_both_assigned(port, log)
        pids = set(_children(log).values())
        produce_tasks(kafka_bootstrap, topic, [(b"k%d" % i, i, 30_000) for i in range(20)])
        _until(
            lambda: _sample(_get(port, "/metrics")[1], "ktf_tasks_in_flight") >= 2,
            30,
            "tasks in flight",
            log,
        )
        # SIGHUP stops like SIGTERM: the pod drains (the tasks would take 30 s) ...
        proc.send_signal(signal.SIGHUP)
        _until(lambda: _events(log, "stopping: draining worker processes"), 10, "the drain", log)
        assert proc.poll() is None
        # ... and a second signal makes every child exit without waiting for them.
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        rc = proc.wait(15)
        took = time.monotonic() - sent
    finally:
        stop_process(proc)
    assert rc == 128 + signal.SIGINT
    assert took < 10, took
    assert not [p for p in pids if _pid_alive(p)]


def test_children_drain_and_exit_when_the_supervisor_is_killed(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    topic, group = f"{unique}.tasks", f"{unique}-g"
    create_topics(kafka_bootstrap, {topic: 2, f"{topic}.reply": 1, f"{topic}.dlq": 1})
    log = tmp_path / "pod.log"
    proc, _port = _pod(kafka_bootstrap, topic, group, log, env={}, args=["--drain-timeout", "5"])
    pids = set(_children(log).values())
    try:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        _until(lambda: not [p for p in pids if _pid_alive(p)], 30, "orphaned children to exit", log)
    finally:
        for pid in pids:
            if _pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert len(_events(log, "the supervisor is gone: draining and exiting")) == 2


def test_a_configuration_error_in_the_children_stops_the_pod_with_exit_2(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    log = tmp_path / "pod.log"
    proc = spawn_worker(
        kafka_bootstrap,
        "t-unused",
        "g-unused",
        args=["--processes", "2", "--handlers", "no_such_module_for_ktf"],
        log_path=log,
    )
    try:
        rc = proc.wait(60)
    finally:
        stop_process(proc)
    text = log.read_text(errors="replace")
    assert rc == 2, text
    assert "ktf: error:" in text and "no_such_module_for_ktf" in text
    assert _events(
        log,
        "worker process failed before joining the group (configuration error, "
        "see its message above): stopping the pod",
    )
    assert not _events(log, "worker process exited; restarting it")


def test_a_crashing_child_is_restarted_with_doubling_backoff(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    log = tmp_path / "pod.log"
    proc = spawn_worker(
        kafka_bootstrap,
        "t-unused",
        "g-unused",
        args=["--processes", "2", "--handlers", "tests.supervisor.crashing_handlers"],
        log_path=log,
    )
    try:

        def three_exits_of_one_child() -> list[dict[str, Any]]:
            exits = [
                e for e in _events(log, "worker process exited; restarting it") if e["process"] == 0
            ]
            return exits if len(exits) >= 3 else []

        exits = _until(three_exits_of_one_child, 30, "three restarts of process 0", log)
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(15)
    finally:
        stop_process(proc)
    assert [e["restart_in_s"] for e in exits[:3]] == [1.0, 2.0, 4.0]
    assert all(e["exit"] == "exit code 3" for e in exits)
    # Stopped while its children were crashing: the pod reports the failure.
    assert rc == 1
