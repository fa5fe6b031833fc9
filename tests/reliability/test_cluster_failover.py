"""A 3-node cluster (RF 3, min ISR 2) under load: kill -9 one broker, then the group
coordinator, then restart both: 0 lost, duplicates counted, no stuck partition."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from framework.devkafka import ClusterSpec, down, procs, up
from tests.reliability.harness import (
    Load,
    Replies,
    WorkerProc,
    create_topics,
    percentile,
    wait_all_committed,
    worker_env,
)

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.timeout(420)]

TASKS = 3000
RATE = 60.0


def _free_base(span: int = 6) -> int:
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = int(s.getsockname()[1])
        if base + span >= 65000:
            continue
        if all(not procs.port_in_use(p) for p in range(base, base + span)):
            return base
    raise AssertionError("no 6 free consecutive ports")


def _coordinator(bootstrap: str, group: str) -> int:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    desc = admin.describe_consumer_groups([group], request_timeout=20)[group].result(timeout=30)
    return int(desc.coordinator.id)


def _kill9(spec: ClusterSpec, node_id: int) -> None:
    node = spec.node_specs[node_id - 1]
    pid = procs.read_pid(node.pid_path)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while procs.is_running(pid, str(node.properties_path)):
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_broker_and_coordinator_kills_lose_nothing(unique: str, tmp_path: Path) -> None:
    spec = ClusterSpec(nodes=3, base_port=_free_base(), state_dir=tmp_path / "kafka", heap="384m")
    up(spec, progress=lambda _: None, timeout=240)
    bootstrap = spec.bootstrap_servers
    topic, group = f"{unique}.failover", f"{unique}-failover"
    workers: list[WorkerProc] = []
    replies = Replies(bootstrap, f"{topic}.reply")
    try:
        create_topics(bootstrap, [topic, f"{topic}.reply", f"{topic}.dlq"], 6, 3, min_isr=2)
        # A fresh cluster: the control topic workers follow for cancels (`ktf topics ensure`).
        create_topics(bootstrap, ["ktf.control"], 1, 3, min_isr=2)
        workers = [
            WorkerProc(
                f"w{i}",
                worker_env(bootstrap, topic, group, f"w{i}", KTF_TOPIC_REPLICATION="3"),
                tmp_path / f"w{i}.log",
            )
            for i in range(2)
        ]
        for w in workers:
            w.start()
        load = Load(bootstrap, topic, TASKS, RATE)
        replies.start(load.sent_at)
        load.start()
        deadline = time.monotonic() + 90
        while len(replies.counts) < 200:  # the group is up and working
            assert time.monotonic() < deadline, "no replies before the faults"
            time.sleep(0.2)
        coordinator = _coordinator(bootstrap, group)
        other = next(n.node_id for n in spec.node_specs if n.node_id != coordinator)
        t_fault = time.monotonic()
        _kill9(spec, other)  # RF 3, min ISR 2: still writable
        time.sleep(8)
        _kill9(spec, coordinator)  # one broker left: no quorum until they return
        time.sleep(8)
        up(spec, progress=lambda _: None, timeout=240)  # restarts the dead nodes
        recovered = time.monotonic() - t_fault
        load.join(240)
        assert load.failed == 0, f"{load.failed} tasks were not acknowledged by the cluster"
        missing = replies.wait_for(load.ids, timeout=180)
        left = wait_all_committed(bootstrap, group, topic, timeout=90)
    finally:
        for w in workers:
            w.stop()
        replies.close()
        down(spec)
    dups = replies.duplicates()
    print(
        f"\nfailover: {TASKS} tasks, killed broker {other} then coordinator {coordinator}, "
        f"both back after {recovered:.0f}s; lost={len(missing)}, duplicates={dups}, "
        f"reply latency p50={percentile(replies.latency, 0.5):.2f}s "
        f"p99={percentile(replies.latency, 0.99):.2f}s max={max(replies.latency):.1f}s"
    )
    assert missing == set(), f"lost {len(missing)} tasks, e.g. {sorted(missing)[:5]}"
    assert left == {}, f"partitions stuck below their end: {left}"
