"""The pod's /healthz and /readyz answer for every child and name the ones that are not well."""

from __future__ import annotations

import urllib.error
import urllib.request

from prometheus_client import CollectorRegistry

from framework.observability.health import HealthServer, HealthState
from framework.supervisor.podhealth import PodHealth
from framework.supervisor.process import ChildView


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _child_server(ready: bool) -> HealthServer:
    state = HealthState()
    state.set_ready(ready, None if ready else "starting: not subscribed yet")
    server = HealthServer(0, CollectorRegistry(), state, host="127.0.0.1")
    server.start()
    return server


def test_readyz_is_ready_only_when_every_child_is_and_names_the_others() -> None:
    up, starting = _child_server(True), _child_server(False)
    views = [
        ChildView(0, 101, up.port, True, True, "running"),
        ChildView(1, 102, starting.port, True, False, "starting: not in the group yet"),
        ChildView(2, None, None, False, True, "restarting in 1.0 s after killed by SIGKILL"),
    ]
    health = PodHealth(lambda: views, stall_timeout=30)
    health.set_ready(True)
    pod = HealthServer(0, CollectorRegistry(), health, host="127.0.0.1")
    pod.start()
    try:
        code, text = _get(pod.url + "/readyz")
        assert code == 503
        assert "1 of 3 worker processes ready" in text
        assert "process 1 (pid 102): starting: not subscribed yet" in text
        assert "process 2: restarting in 1.0 s after killed by SIGKILL" in text
        # A crashed child being restarted is the supervisor's business, not a liveness failure.
        assert _get(pod.url + "/healthz") == (200, "ok\n")

        views[1:] = [ChildView(1, 102, up.port, True, True, "running")]
        health._cache = (0.0, [])  # forget the probe answers now, not in 0.5 s
        code, text = _get(pod.url + "/readyz")
        assert code == 200
        # Each child's own membership detail, by process.
        assert text == (
            "ready: process 0 (pid 101): waiting for a partition assignment (joining the "
            "group); process 1 (pid 102): waiting for a partition assignment (joining the group)\n"
        )

        health.set_ready(False, "stopping: draining worker processes")
        code, text = _get(pod.url + "/readyz")
        assert (code, text) == (503, "not ready: stopping: draining worker processes\n")
    finally:
        for s in (pod, up, starting):
            s.stop()


def test_healthz_names_a_stalled_child() -> None:
    stalled_state = HealthState(stall_timeout=0.001)
    stalled = HealthServer(0, CollectorRegistry(), stalled_state, host="127.0.0.1")
    stalled.start()
    try:
        views = [ChildView(0, 7, stalled.port, True, True, "running")]
        health = PodHealth(lambda: views, stall_timeout=30)
        health.set_ready(True)
        reason = health.health_reason()
        assert reason.startswith("stalled: process 0 (pid 7): stalled: fetch loop has not turned")
        assert not health.healthy()
    finally:
        stalled.stop()
