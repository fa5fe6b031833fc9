"""A SASL_SSL dev broker (SCRAM-SHA-512 over TLS): worker, client, CLI and the chart's
environment work against it; bad credentials and an untrusted CA are one clear line;
no secret appears in any output."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tests.deploy.conftest as deploy_fixtures
from framework import Settings, TaskClient
from framework.devkafka import ClusterSpec, down, up
from framework.devkafka.security import Credentials, load
from framework.observability.logging import configure_logging
from framework.runtime.worker import Worker
from tests.devkafka.test_failures import _free_base_port

pytestmark = [pytest.mark.broker, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
# The chart fixtures of tests/deploy, for the rendered-environment case.
helm_bin = deploy_fixtures.helm_bin
render = deploy_fixtures.render
KTF = (sys.executable, "-m", "framework.cli")


@pytest.fixture(scope="module")
def secured(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ClusterSpec, Credentials, str]]:
    """A private secured broker; yields its spec, credentials and `up`'s output."""
    state = tmp_path_factory.mktemp("sasl") / "kafka"
    spec = ClusterSpec(base_port=_free_base_port(), state_dir=state, security="sasl_ssl")
    lines: list[str] = []
    try:
        up(spec, progress=lines.append, timeout=180)
        creds = load(spec.root)
        assert creds is not None
        proc = subprocess.run(
            [*KTF, "topics", "ensure", "--handlers", "handlers.examples", "--partitions", "2"],
            env=client_env(spec, creds),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        lines += [proc.stdout, proc.stderr]
        yield spec, creds, "\n".join(lines)
    finally:
        down(spec)


def client_env(spec: ClusterSpec, creds: Credentials, **changes: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KTF_")}
    env.update({f"KTF_{k.upper()}": v for k, v in creds.client_settings().items()})
    env.update(
        {
            "KTF_BOOTSTRAP_SERVERS": spec.bootstrap_servers,
            "KTF_SCHEMAS_DIR": str(REPO / "schemas"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(changes)
    return env


def assert_no_secret(creds: Credentials, *texts: str) -> None:
    for secret in (creds.client_password, creds.broker_password, creds.store_password):
        for text in texts:
            assert secret not in text, "a password appears in captured output"


def other_ca(tmp_path: Path) -> Path:
    """A CA the broker's certificate was not signed by."""
    store, pem = tmp_path / "other.p12", tmp_path / "other.pem"
    env = {**os.environ, "P": "changeit"}
    for args in (
        ["-genkeypair", "-alias", "x", "-keyalg", "RSA", "-dname", "CN=not the dev CA",
         "-keystore", str(store), "-storetype", "PKCS12", "-storepass:env", "P",
         "-keypass:env", "P", "-ext", "bc:c"],
        ["-exportcert", "-rfc", "-alias", "x", "-keystore", str(store), "-storepass:env", "P",
         "-file", str(pem)],
    ):  # fmt: skip
        subprocess.run(["keytool", *args], env=env, check=True, capture_output=True, timeout=60)
    return pem


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_up_writes_private_client_settings_and_prints_no_password(
    secured: tuple[ClusterSpec, Credentials, str],
) -> None:
    spec, creds, output = secured
    assert "generating a CA, a broker certificate and SCRAM-SHA-512 users" in output
    for path in (creds.client_env, creds.client_properties, spec.root / "credentials.json"):
        assert path.stat().st_mode & 0o077 == 0, f"{path} is readable by others"
    assert creds.client_password in creds.client_env.read_text()
    assert_no_secret(creds, output, repr(creds))
    # The listener really demands TLS and SASL: a plaintext client gets nowhere.
    plain = Settings(bootstrap_servers=spec.bootstrap_servers)
    from confluent_kafka.admin import AdminClient

    conf = plain.librdkafka("admin")
    conf["logger"] = logging.getLogger("quiet")
    with pytest.raises(Exception, match=r"(?i)transport|timed out"):
        AdminClient(conf).list_topics(timeout=3)


def test_worker_client_and_cli_round_trip_over_sasl_ssl(
    secured: tuple[ClusterSpec, Credentials, str],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    spec, creds, _ = secured
    settings = Settings(
        bootstrap_servers=spec.bootstrap_servers,
        group_id="sasl-round-trip",
        handlers=("handlers.examples",),
        schemas_dir=str(REPO / "schemas"),
        metrics_port=0,
        log_level="DEBUG",
        **creds.client_settings(),
    )
    configure_logging(level="DEBUG", fmt="json")
    caplog.set_level(logging.DEBUG)

    async def scenario() -> dict[str, Any]:
        async with Worker(settings, serve_http=False) as worker:
            async with TaskClient(settings, handlers=("handlers.examples",)) as client:
                reply = await client.call("tasks.divide", {"dividend": 7, "divisor": 2}, timeout=60)
            assert worker.health.ready()
            return dict(reply.result)

    assert asyncio.run(asyncio.wait_for(scenario(), 150)) == {"quotient": 3, "remainder": 1}
    # The CLI with the same settings from the environment: lag of the group just used.
    env = client_env(spec, creds)
    proc = subprocess.run(
        [*KTF, "lag", "--group", "sasl-round-trip", "--json"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert '"runnable_lag": 0' in proc.stdout
    out, err = capfd.readouterr()
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert_no_secret(creds, out, err, logged, proc.stdout, proc.stderr)
    shown = repr(settings) + str(settings) + repr(settings.masked())
    assert_no_secret(creds, shown)
    assert "sasl_password='***'" in repr(settings)


def test_the_charts_rendered_environment_runs_a_worker_against_it(
    secured: tuple[ClusterSpec, Credentials, str],
    render: Any,
    tmp_path: Path,
) -> None:
    spec, creds, _ = secured
    from tests.deploy.deploy_helpers import one

    # Server-authenticated TLS with SASL, as ci/sasl-tls-values.yaml minus the client cert.
    manifests = render(
        values=["ci/sasl-tls-values.yaml"],
        sets=["tls.certKey=", "tls.keyKey=", "tls.keyPasswordKey="],
    )
    data = dict(one(manifests, "ConfigMap")["data"])
    container = one(manifests, "StatefulSet")["spec"]["template"]["spec"]["containers"][0]
    secrets = {
        ("ktf-kafka-credentials", "username"): "ktf",
        ("ktf-kafka-credentials", "password"): creds.client_password,
    }
    mount = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == "kafka-tls")
    tls_dir = tmp_path / "tls"
    tls_dir.mkdir()
    shutil.copy(creds.ca_pem, tls_dir / "ca.crt")  # the Secret's ca.crt key, mounted
    env = {k: v for k, v in os.environ.items() if not k.startswith("KTF_")}
    env.update({k: str(v).replace(mount, str(tls_dir)) for k, v in data.items()})
    metrics = free_port()
    for e in container["env"]:
        if "value" in e:
            env[e["name"]] = e["value"]
        elif "secretKeyRef" in e.get("valueFrom", {}):
            ref = e["valueFrom"]["secretKeyRef"]
            env[e["name"]] = secrets[(ref["name"], ref["key"])]
        else:
            env[e["name"]] = {"KTF_ADVERTISED_HOST": "127.0.0.1"}.get(e["name"], "chart-pod-0")
    assert env["KTF_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert env["KTF_SASL_MECHANISM"] == "SCRAM-SHA-512"
    env.update(
        {
            # What the cluster would provide: the broker address, the image's paths.
            "KTF_BOOTSTRAP_SERVERS": spec.bootstrap_servers,
            "KTF_SCHEMAS_DIR": str(REPO / "schemas"),
            "KTF_METRICS_PORT": str(metrics),
            "KTF_GROUP_ID": "sasl-chart-env",
            "KTF_LOG_FORMAT": "json",
        }
    )
    log = tmp_path / "worker.log"
    with log.open("w") as fh:
        proc = subprocess.Popen([*KTF, "worker"], env=env, stdout=fh, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        body = ""
        while "member" not in body:
            assert proc.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, f"never ready: {body!r} {log.read_text()[-1500:]}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{metrics}/readyz", timeout=2) as r:
                    body = r.read().decode()
            except OSError:
                time.sleep(0.5)
        settings = Settings(bootstrap_servers=spec.bootstrap_servers, **creds.client_settings())

        async def call() -> dict[str, Any]:
            async with TaskClient(settings, handlers=("handlers.examples",)) as client:
                reply = await client.call("tasks.divide", {"dividend": 9, "divisor": 4}, timeout=60)
                return dict(reply.result)

        assert asyncio.run(call()) == {"quotient": 2, "remainder": 1}
    finally:
        proc.terminate()
        proc.wait(60)
    assert_no_secret(creds, log.read_text())


def _one_line_failure(argv: list[str], env: dict[str, str], budget: float) -> tuple[str, str]:
    t0 = time.monotonic()
    proc = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=budget + 30, check=False
    )
    elapsed = time.monotonic() - t0
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert elapsed < budget, f"took {elapsed:.1f}s"
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    # One clear error line and no retry storm: besides it, at most the worker's own
    # "worker stopped" info line; no warning or librdkafka line at all.
    errors = [ln for ln in lines if ln.startswith("ktf: error:")]
    others = [ln for ln in lines if not ln.startswith("ktf: error:")]
    assert len(errors) == 1, lines
    assert all('"worker stopped"' in ln and '"level": "info"' in ln for ln in others), lines
    return errors[0], proc.stdout + proc.stderr


def test_a_wrong_password_is_one_clear_line_for_worker_and_cli(
    secured: tuple[ClusterSpec, Credentials, str],
) -> None:
    spec, creds, _ = secured
    wrong = "not-the-password-" + creds.client_password[:4]
    env = client_env(spec, creds, KTF_SASL_PASSWORD=wrong, KTF_METRICS_PORT="0")
    for argv in (
        [*KTF, "worker", "--handlers", "handlers.examples"],
        [*KTF, "lag", "--group", "g"],
    ):
        line, everything = _one_line_failure(argv, env, budget=30)
        assert line.startswith("ktf: error: SASL authentication to 127.0.0.1:")
        assert "user 'ktf' (SCRAM-SHA-512)" in line and "KTF_SASL_PASSWORD" in line
        assert wrong not in everything
        assert_no_secret(creds, everything)


def test_an_untrusted_ca_is_one_clear_line(
    secured: tuple[ClusterSpec, Credentials, str], tmp_path: Path
) -> None:
    spec, creds, _ = secured
    pem = other_ca(tmp_path)
    env = client_env(spec, creds, KTF_SSL_CA_LOCATION=str(pem), KTF_METRICS_PORT="0")
    for argv in (
        [*KTF, "worker", "--handlers", "handlers.examples"],
        [*KTF, "top", "--group", "g"],
    ):
        line, everything = _one_line_failure(argv, env, budget=30)
        assert line == (
            f"ktf: error: TLS handshake with {spec.bootstrap_servers} failed: the broker's "
            f"certificate is not trusted by ssl_ca_location={pem} (KTF_SSL_CA_LOCATION): "
            "certificate verify failed"
        )
        assert_no_secret(creds, everything)
