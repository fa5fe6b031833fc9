"""HealthServer over real HTTP: /metrics, /healthz (stall detection), /readyz."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from framework.errors import FrameworkError
from framework.observability.health import HealthServer, HealthState
from framework.observability.metrics import WorkerMetrics


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read().decode()


@pytest.fixture
def served() -> Iterator[tuple[HealthServer, HealthState, WorkerMetrics]]:
    metrics = WorkerMetrics()
    health = HealthState(stall_timeout=0.3)
    srv = HealthServer(0, metrics.registry, health, host="127.0.0.1")
    srv.start()
    try:
        yield srv, health, metrics
    finally:
        srv.stop()


def test_constructor_does_not_bind() -> None:
    srv = HealthServer(0, WorkerMetrics().registry, HealthState())
    assert srv.port == 0  # nothing bound yet
    srv.stop()  # stopping a never-started server is harmless


def test_metrics_endpoint_serves_counts_split_by_outcome(
    served: tuple[HealthServer, HealthState, WorkerMetrics],
) -> None:
    srv, _, m = served
    outcomes = ["ok"] * 7 + ["error"] * 2 + ["dead_lettered"]
    for outcome in outcomes:
        m.task_finished("resize", "tasks.resize", outcome, 0.01, 0.1)
    m.set_buffered(17)
    status, ctype, body = get(f"{srv.url}/metrics")
    assert status == 200
    assert ctype.startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(body)
        for s in fam.samples
    }

    def tasks(outcome: str) -> float:
        labels = (("handler", "resize"), ("outcome", outcome), ("topic", "tasks.resize"))
        return samples[("ktf_tasks_total", labels)]

    assert tasks("ok") == 7
    assert tasks("error") == 2
    assert tasks("dead_lettered") == 1
    assert samples[("ktf_task_duration_seconds_count", (("handler", "resize"),))] == 10
    assert samples[("ktf_buffered_records", ())] == 17


def test_healthz_turns_503_when_the_loop_stalls_and_recovers_on_beat(
    served: tuple[HealthServer, HealthState, WorkerMetrics],
) -> None:
    srv, health, _ = served
    health.beat()
    assert get(f"{srv.url}/healthz")[0] == 200
    time.sleep(0.45)  # > stall_timeout 0.3 s without a beat
    status, _, body = get(f"{srv.url}/healthz")
    assert status == 503
    assert body.startswith("stalled: fetch loop has not turned for")
    health.beat()
    status, _, body = get(f"{srv.url}/healthz")
    assert (status, body.strip()) == (200, "ok")


def test_readyz_follows_set_ready_with_a_reason(
    served: tuple[HealthServer, HealthState, WorkerMetrics],
) -> None:
    srv, health, _ = served
    health.beat()
    status, _, body = get(f"{srv.url}/readyz")
    assert status == 503 and "not subscribed" in body
    health.set_ready(True)
    assert get(f"{srv.url}/readyz")[0] == 200
    health.set_ready(False, "draining: shutdown requested")
    status, _, body = get(f"{srv.url}/readyz")
    assert status == 503 and "draining" in body


def test_healthy_without_any_broker(unused_tcp_port: int) -> None:
    # Settings point at a port nobody listens on; health must not care.
    from framework.config import Settings

    settings = Settings.load({"bootstrap_servers": f"127.0.0.1:{unused_tcp_port}"}, env={})
    metrics = WorkerMetrics()
    health = HealthState(stall_timeout=5.0)
    with HealthServer(0, metrics.registry, health, host="127.0.0.1") as srv:
        assert settings.bootstrap_servers.endswith(str(unused_tcp_port))
        health.beat()
        health.set_ready(True)
        assert get(f"{srv.url}/healthz")[:1] == (200,)
        assert get(f"{srv.url}/readyz")[:1] == (200,)
        assert get(f"{srv.url}/metrics")[0] == 200


def test_unknown_path_is_404(served: tuple[HealthServer, HealthState, WorkerMetrics]) -> None:
    assert get(f"{served[0].url}/nope")[0] == 404


def test_port_in_use_is_one_clear_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        srv = HealthServer(port, WorkerMetrics().registry, HealthState(), host="127.0.0.1")
        with pytest.raises(FrameworkError, match=f"127.0.0.1:{port}"):
            srv.start()


def test_stop_releases_the_port() -> None:
    srv = HealthServer(0, WorkerMetrics().registry, HealthState(), host="127.0.0.1")
    srv.start()
    port = srv.port
    srv.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)


def test_beat_is_cheap() -> None:
    h = HealthState()
    n = 100_000
    start = time.perf_counter()
    for _ in range(n):
        h.beat()
    per_call = (time.perf_counter() - start) / n
    assert per_call < 2e-6  # generous bound for a loaded CI box; bench/ prints the real figure
