"""ClusterSpec: ports, addresses and where state lives."""

from __future__ import annotations

from pathlib import Path

import pytest

from framework.devkafka import ClusterSpec
from framework.errors import DevKafkaError


def test_one_node_defaults_to_local_9092() -> None:
    spec = ClusterSpec()
    assert spec.bootstrap_servers == "127.0.0.1:9092"
    (node,) = spec.node_specs
    assert (node.node_id, node.client_port, node.controller_port) == (1, 9092, 9093)


def test_three_nodes_use_every_other_port_from_the_base() -> None:
    spec = ClusterSpec(nodes=3, base_port=29092)
    assert spec.bootstrap_servers == "127.0.0.1:29092,127.0.0.1:29094,127.0.0.1:29096"
    assert [(n.client_port, n.controller_port) for n in spec.node_specs] == [
        (29092, 29093),
        (29094, 29095),
        (29096, 29097),
    ]
    assert (spec.replication_factor, spec.min_insync_replicas) == (3, 2)


def test_default_state_dir_is_under_ktf_cache_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KTF_CACHE_DIR", str(tmp_path))
    assert ClusterSpec(nodes=3, base_port=19092).root == tmp_path / "dev-kafka" / "3n-19092"


def test_explicit_state_dir_wins(tmp_path: Path) -> None:
    spec = ClusterSpec(state_dir=str(tmp_path / "s"))
    assert spec.root == tmp_path / "s"
    assert spec.node_specs[0].log_path == tmp_path / "s" / "node-1" / "logs" / "server.log"


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"nodes": 2}, "--nodes must be 1 or 3"),
        ({"base_port": 80}, "--base-port 80"),
        ({"base_port": 65534, "nodes": 3}, "outside 1024..65535"),
        ({"kafka_version": "3.9.0"}, "4.x"),
        ({"heap": "lots"}, "heap"),
    ],
)
def test_invalid_spec_is_one_clear_error(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(DevKafkaError, match=needle):
        ClusterSpec(**kwargs)  # type: ignore[arg-type]
