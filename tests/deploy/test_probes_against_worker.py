"""The probe paths the chart configures exist on a real worker's HTTP server, and the
worker drains and exits within the grace period the chart gives it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.deploy.deploy_helpers import REPO, Render, one

pytestmark = pytest.mark.broker

# `ktf` as the image runs it, through the interpreter of this test run.
KTF = (sys.executable, "-m", "framework.cli")
ENSURE_ARGS = ("--handlers", "handlers.examples", "--partitions", "1", "--replication-factor", "1")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0  # not listening yet


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-2000:] if path.exists() else ""


def test_probe_paths_answer_on_a_running_worker(
    render: Render, kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    sts = one(render(), "StatefulSet")
    pod = sts["spec"]["template"]["spec"]
    container = pod["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    env = {e["name"]: e.get("value") for e in container["env"]}
    probes = {
        kind: container[kind]["httpGet"]
        for kind in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    for probe in probes.values():
        assert probe["port"] in ports, probe
    drain = float(env["KTF_DRAIN_TIMEOUT"])
    grace = float(pod["terminationGracePeriodSeconds"])

    base_env = {
        **os.environ,
        "KTF_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "KTF_SCHEMAS_DIR": str(REPO / "schemas"),
        "KTF_LOG_FORMAT": "json",
    }
    ensure = subprocess.run(
        [*KTF, "topics", "ensure", *ENSURE_ARGS],
        cwd=REPO,
        env=base_env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert ensure.returncode == 0, ensure.stderr

    port = _free_port()
    log = tmp_path / "worker.log"
    worker_env = {
        **base_env,
        "KTF_GROUP_ID": f"{unique}-probes",
        "KTF_GROUP_INSTANCE_ID": f"{unique}-0",  # as the StatefulSet sets it
        "KTF_DRAIN_TIMEOUT": env["KTF_DRAIN_TIMEOUT"],
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*KTF, "worker", "--handlers", "handlers.examples", "--metrics-port", str(port)],
            cwd=REPO,
            env=worker_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        for kind, probe in probes.items():
            url = f"http://127.0.0.1:{port}{probe['path']}"
            deadline = time.monotonic() + 60
            code = 0
            while time.monotonic() < deadline:
                assert proc.poll() is None, f"worker exited {proc.returncode}: {_tail(log)}"
                code = _status(url)
                if code == 200:
                    break
                time.sleep(0.25)
            assert code == 200, f"{kind} {url} answered {code} for 60 s: {_tail(log)}"
        # The server must not answer 200 to anything: an unknown path is a 404.
        assert _status(f"http://127.0.0.1:{port}/no-such-probe") == 404
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3).read()
        assert b"ktf_" in metrics

        # Kubernetes sends SIGTERM and kills after the grace period: the worker must be
        # gone by then (it drains for at most KTF_DRAIN_TIMEOUT).
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pytest.fail(f"worker still running {grace} s after SIGTERM: {_tail(log)}")
        assert code == 0, _tail(log)
        assert time.monotonic() - started <= drain + 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
