"""Real brokers: `up`, `status`, `down` for one and three nodes on their own ports.

These never touch the session broker on 9092: they use base ports 19092 and 29092
and state dirs under tmp_path, and always stop what they started.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from framework.devkafka import ClusterSpec, ClusterStatus, down, status, up
from framework.devkafka.procs import port_in_use

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.timeout(300)]


def _admin(spec: ClusterSpec) -> AdminClient:
    return AdminClient({"bootstrap.servers": spec.bootstrap_servers})


def _broker_ids(spec: ClusterSpec) -> set[int]:
    return {int(b) for b in _admin(spec).list_topics(timeout=15).brokers}


def _process_exists(pid: int, marker: str) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state != "Z" and marker in cmdline


def _assert_stopped(spec: ClusterSpec, before: ClusterStatus) -> None:
    after = status(spec)
    assert not after.running
    assert not any(n.alive for n in after.nodes)
    for node, st in zip(spec.node_specs, before.nodes, strict=True):
        assert st.pid is not None
        assert not _process_exists(st.pid, str(node.properties_path)), node.node_id
        assert not node.pid_path.exists()
        assert not port_in_use(node.client_port), node.client_port
        assert not port_in_use(node.controller_port), node.controller_port


@pytest.fixture
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ClusterSpec]:
    nodes, base = request.param
    spec = ClusterSpec(nodes=nodes, base_port=base, state_dir=tmp_path / "dev-kafka")
    for node in spec.node_specs:
        for port in (node.client_port, node.controller_port):
            if port_in_use(port):
                pytest.fail(f"port {port} is busy; these tests need {base}..{base + 2 * nodes - 1}")
    try:
        yield spec
    finally:
        down(spec, timeout=30.0)


@pytest.mark.parametrize("cluster", [(1, 19092)], indirect=True)
def test_single_node_up_status_down(cluster: ClusterSpec) -> None:
    lines: list[str] = []
    st = up(cluster, progress=lines.append, timeout=120.0)
    assert st.running
    assert [n.address for n in st.nodes] == ["127.0.0.1:19092"]
    assert st.nodes[0].pid is not None and st.nodes[0].log_path.is_file()
    assert _broker_ids(cluster) == {1}
    assert any("ready" in line for line in lines)
    assert "Kafka Server started" in st.nodes[0].log_path.read_text()

    # A second `up` finds it running and changes nothing.
    again_lines: list[str] = []
    again = up(cluster, progress=again_lines.append, timeout=60.0)
    assert [n.pid for n in again.nodes] == [n.pid for n in st.nodes]
    assert any("already running" in line for line in again_lines)

    down(cluster, timeout=30.0)
    _assert_stopped(cluster, st)
    down(cluster, timeout=30.0)  # idempotent


@pytest.mark.parametrize("cluster", [(3, 29092)], indirect=True)
def test_three_nodes_replicate_and_recover_a_killed_node(cluster: ClusterSpec) -> None:
    st = up(cluster, progress=lambda _: None, timeout=180.0)
    assert st.running and len(st.nodes) == 3
    assert _broker_ids(cluster) == {1, 2, 3}

    admin = _admin(cluster)
    futures = admin.create_topics([NewTopic("rf3-check", num_partitions=3, replication_factor=3)])
    futures["rf3-check"].result(timeout=30)
    deadline = time.monotonic() + 30
    while True:
        topic = admin.list_topics(topic="rf3-check", timeout=10).topics["rf3-check"]
        if topic.partitions and all(len(p.isrs) == 3 for p in topic.partitions.values()):
            break
        assert time.monotonic() < deadline, "rf3-check never got 3 in-sync replicas"
        time.sleep(0.5)
    assert all(len(p.replicas) == 3 for p in topic.partitions.values())

    # Kill one node: status says the cluster is only partly up; `up` restarts just that node.
    victim = st.nodes[2]
    assert victim.pid is not None
    os.kill(victim.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while status(cluster).nodes[2].alive:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    partial = status(cluster)
    assert not partial.running and [n.alive for n in partial.nodes] == [True, True, False]
    healed = up(cluster, progress=lambda _: None, timeout=180.0)
    assert healed.running
    assert [n.pid for n in healed.nodes[:2]] == [n.pid for n in st.nodes[:2]]
    assert _broker_ids(cluster) == {1, 2, 3}

    down(cluster, timeout=30.0)
    _assert_stopped(cluster, healed)
