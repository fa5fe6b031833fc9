"""`ktf dev kafka ...` flag parsing, output and exit codes (no broker started)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from framework.commands import dev


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ktf")
    dev.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(list(argv))


def test_flags_map_onto_the_cluster_spec(tmp_path: Path) -> None:
    args = _parse(
        "dev", "kafka", "up", "--nodes", "3", "--base-port", "29092",
        "--state-dir", str(tmp_path), "--kafka-version", "4.1.1", "--heap", "1g",
        "--timeout", "60",
    )  # fmt: skip
    assert (args.nodes, args.base_port, args.kafka_version, args.heap, args.timeout) == (
        3, 29092, "4.1.1", "1g", 60.0,
    )  # fmt: skip
    assert args.state_dir == str(tmp_path)


def test_only_one_or_three_nodes_are_accepted() -> None:
    with pytest.raises(SystemExit):
        _parse("dev", "kafka", "up", "--nodes", "2")


def test_status_of_a_stopped_cluster_exits_1_and_names_the_logs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _parse("dev", "kafka", "status", "--base-port", "39092", "--state-dir", str(tmp_path))
    assert args.func(args) == 1
    out = capsys.readouterr().out
    assert "NOT running" in out
    assert "127.0.0.1:39092" in out
    assert str(tmp_path / "node-1" / "logs" / "server.log") in out


def test_down_of_a_stopped_cluster_is_harmless(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _parse("dev", "kafka", "down", "--base-port", "39092", "--state-dir", str(tmp_path))
    assert args.func(args) == 0
    assert "was not running" in capsys.readouterr().out
