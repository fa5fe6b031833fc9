"""server.properties rendering for one and three nodes."""

from __future__ import annotations

from pathlib import Path

from framework.devkafka import ClusterSpec
from framework.devkafka.properties import broker_properties, render_log4j2, render_properties


def _props(spec: ClusterSpec, index: int = 0) -> dict[str, str]:
    return broker_properties(spec, spec.node_specs[index])


def test_single_node_is_a_standalone_combined_node_with_rf1(tmp_path: Path) -> None:
    p = _props(ClusterSpec(state_dir=tmp_path))
    assert p["process.roles"] == "broker,controller"
    assert p["node.id"] == "1"
    assert p["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert p["advertised.listeners"] == p["listeners"]
    assert p["controller.quorum.bootstrap.servers"] == "127.0.0.1:9093"
    assert "controller.quorum.voters" not in p
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "share.coordinator.state.topic.replication.factor",
        "share.coordinator.state.topic.min.isr",
        "default.replication.factor",
        "min.insync.replicas",
    ):
        assert p[key] == "1", key
    assert p["log.dirs"] == str(tmp_path / "node-1" / "data")


def test_three_nodes_share_a_static_quorum_with_rf3_and_min_isr2(tmp_path: Path) -> None:
    spec = ClusterSpec(nodes=3, base_port=29092, state_dir=tmp_path)
    all_props = [_props(spec, i) for i in range(3)]
    voters = "1@127.0.0.1:29093,2@127.0.0.1:29095,3@127.0.0.1:29097"
    for i, p in enumerate(all_props, start=1):
        assert p["node.id"] == str(i)
        assert p["controller.quorum.voters"] == voters
        assert "controller.quorum.bootstrap.servers" not in p
        assert p["default.replication.factor"] == "3"
        assert p["min.insync.replicas"] == "2"
        assert p["offsets.topic.replication.factor"] == "3"
        assert p["transaction.state.log.replication.factor"] == "3"
        assert p["transaction.state.log.min.isr"] == "2"
    assert all_props[1]["listeners"] == ("PLAINTEXT://127.0.0.1:29094,CONTROLLER://127.0.0.1:29095")
    assert len({p["log.dirs"] for p in all_props}) == 3


def test_framework_defaults_fast_joins_no_auto_create_six_partitions(tmp_path: Path) -> None:
    p = _props(ClusterSpec(state_dir=tmp_path))
    assert p["group.initial.rebalance.delay.ms"] == "0"
    assert p["auto.create.topics.enable"] == "false"
    assert p["num.partitions"] == "6"


def test_rendered_file_is_key_value_lines(tmp_path: Path) -> None:
    spec = ClusterSpec(state_dir=tmp_path)
    text = render_properties(spec, spec.node_specs[0])
    pairs = dict(
        line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")
    )
    assert pairs == _props(spec)


def test_log4j2_writes_server_log_under_kafka_logs_dir() -> None:
    text = render_log4j2()
    assert "${sys:kafka.logs.dir}/server.log" in text
    assert "rootLogger.level = INFO" in text
