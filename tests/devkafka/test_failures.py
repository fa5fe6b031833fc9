"""Each way `up` can fail is one clear DevKafkaError line (no JVM or Maven needed)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from framework.devkafka import ClusterSpec, status, up
from framework.errors import DevKafkaError
from tests.devkafka.conftest import path_without


def _free_base_port() -> int:
    """A base port whose client and controller ports are both free right now."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port < 65000 and _free(port + 1):
            return port
    raise AssertionError("no free port pair found")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture
def listening() -> Iterator[socket.socket]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock
    sock.close()


def _quiet(_: str) -> None:
    pass


def test_missing_java_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", path_without("java"))
    spec = ClusterSpec(base_port=_free_base_port(), state_dir=tmp_path / "state")
    with pytest.raises(DevKafkaError, match=r"`java` is not on PATH"):
        up(spec, progress=_quiet)


def test_missing_mvn_is_named_when_jars_are_not_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_java_dir: Path
) -> None:
    monkeypatch.setenv("KTF_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", os.pathsep.join([str(fake_java_dir), path_without("mvn")]))
    spec = ClusterSpec(base_port=_free_base_port(), state_dir=tmp_path / "state")
    with pytest.raises(DevKafkaError, match=r"`mvn` is not on PATH"):
        up(spec, progress=_quiet)


def test_taken_client_port_is_named(tmp_path: Path, listening: socket.socket) -> None:
    port = int(listening.getsockname()[1])
    spec = ClusterSpec(base_port=port, state_dir=tmp_path / "state")
    with pytest.raises(DevKafkaError, match=rf"port {port} \(client port of node 1\)"):
        up(spec, progress=_quiet)


def test_taken_controller_port_of_a_later_node_is_named(
    tmp_path: Path, listening: socket.socket
) -> None:
    taken = int(listening.getsockname()[1])
    base = taken - 3  # node 2's controller port is base + 3
    spec = ClusterSpec(nodes=3, base_port=base, state_dir=tmp_path / "state")
    if not all(_free(p) for p in range(base, base + 6) if p != taken):
        pytest.skip("neighbouring ports are busy")
    with pytest.raises(DevKafkaError, match=rf"port {taken} \(controller port of node 2\)"):
        up(spec, progress=_quiet)


def test_broker_dying_during_start_reports_its_last_error_and_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_java_dir: Path, fake_jars: Path
) -> None:
    monkeypatch.setenv("PATH", os.pathsep.join([str(fake_java_dir), os.environ["PATH"]]))
    monkeypatch.setenv("FAKE_KAFKA_MODE", "crash")
    spec = ClusterSpec(base_port=_free_base_port(), state_dir=tmp_path / "state")
    with pytest.raises(DevKafkaError) as info:
        up(spec, progress=_quiet, timeout=30)
    msg = str(info.value)
    assert "node 1" in msg and "exited with status 1 before it was ready" in msg
    assert "Exiting Kafka due to fatal exception: boom" in msg
    assert str(spec.node_specs[0].log_path) in msg
    assert "\n" not in msg


def test_timeout_names_the_log_and_leaves_nothing_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_java_dir: Path, fake_jars: Path
) -> None:
    monkeypatch.setenv("PATH", os.pathsep.join([str(fake_java_dir), os.environ["PATH"]]))
    monkeypatch.setenv("FAKE_KAFKA_MODE", "hang")
    spec = ClusterSpec(base_port=_free_base_port(), state_dir=tmp_path / "state")
    with pytest.raises(DevKafkaError, match=r"timed out after 2s .*server\.log"):
        up(spec, progress=_quiet, timeout=2.0)
    assert not status(spec).nodes[0].alive
    assert not spec.node_specs[0].pid_path.exists()


def test_state_dir_of_another_layout_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_java_dir: Path, fake_jars: Path
) -> None:
    monkeypatch.setenv("PATH", os.pathsep.join([str(fake_java_dir), os.environ["PATH"]]))
    state = tmp_path / "state"
    state.mkdir()
    (state / "cluster.spec").write_text("nodes=3 base_port=29092\n")
    spec = ClusterSpec(base_port=_free_base_port(), state_dir=state)
    with pytest.raises(DevKafkaError, match=r"belongs to a cluster with nodes=3"):
        up(spec, progress=_quiet)
