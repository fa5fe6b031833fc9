"""docker-compose.yml follows the Compose specification and wires the demo together.

No Docker engine runs here, so the file is validated statically: the Compose spec
schema (vendored by check-jsonschema), then the wiring `docker compose up` relies on.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
import yaml

from tests.deploy.deploy_helpers import REPO, venv_tool

COMPOSE = REPO / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def test_compose_file_validates_against_the_compose_spec() -> None:
    proc = subprocess.run(
        [venv_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_kafka_is_the_official_image_in_kraft_mode(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = kafka["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "CONTROLLER" in env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert "zookeeper" not in json.dumps(kafka).lower()
    assert "healthcheck" in kafka


def test_workers_bootstrap_from_the_internal_listener(compose: dict[str, Any]) -> None:
    advertised = compose["services"]["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    for name in ("topics-init", "worker", "producer"):
        bootstrap = compose["services"][name]["environment"]["KTF_BOOTSTRAP_SERVERS"]
        assert f"://{bootstrap}" in advertised, (name, bootstrap, advertised)


def test_topic_init_runs_topics_ensure_after_kafka_is_healthy(compose: dict[str, Any]) -> None:
    init = compose["services"]["topics-init"]
    assert init["command"][:2] == ["topics", "ensure"]
    assert "--handlers" in init["command"]
    assert init["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert init.get("restart", "no") == "no"


def test_workers_and_producer_wait_for_topic_init_to_complete(compose: dict[str, Any]) -> None:
    for name in ("worker", "producer"):
        depends = compose["services"][name]["depends_on"]
        assert depends["topics-init"]["condition"] == "service_completed_successfully", name


def test_ktf_services_build_from_the_dockerfile(compose: dict[str, Any]) -> None:
    for name in ("topics-init", "worker", "producer"):
        build = compose["services"][name]["build"]
        assert (REPO / build["context"] / build.get("dockerfile", "Dockerfile")).is_file()


def test_workers_run_the_example_handlers_and_drain_before_kill(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    assert worker["command"] == ["worker"]
    assert worker["environment"]["KTF_HANDLERS"] == "handlers.examples"
    grace = int(worker["stop_grace_period"].rstrip("s"))
    assert grace > int(worker["environment"]["KTF_DRAIN_TIMEOUT"])


def test_demo_producer_sends_demo_tasks(compose: dict[str, Any]) -> None:
    producer = compose["services"]["producer"]
    argv = producer["entrypoint"] + producer["command"]
    assert argv == ["python", "-m", "framework.demo", "produce", "--count", "1000", "--rate", "100"]


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    out = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        out[target] = source
    return out


def test_prometheus_scrapes_the_workers_metrics_port(compose: dict[str, Any]) -> None:
    mounts = _mounts(compose["services"]["prometheus"])
    config_path = REPO / mounts["/etc/prometheus/prometheus.yml"]
    config = yaml.safe_load(config_path.read_text())
    worker = compose["services"]["worker"]
    port = int(worker["environment"]["KTF_METRICS_PORT"])
    assert str(port) in [str(p) for p in worker["expose"]]
    jobs = config["scrape_configs"]
    assert any(
        sd.get("names") == ["worker"] and sd.get("port") == port
        for job in jobs
        for sd in job.get("dns_sd_configs", [])
    ), jobs
    assert all(job.get("metrics_path", "/metrics") == "/metrics" for job in jobs)


def test_grafana_provisions_the_datasource_and_the_dashboard(compose: dict[str, Any]) -> None:
    mounts = _mounts(compose["services"]["grafana"])
    provisioning = REPO / mounts["/etc/grafana/provisioning"]
    datasources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    assert datasources["datasources"][0]["url"] == "http://prometheus:9090"
    providers = yaml.safe_load((provisioning / "dashboards" / "ktf.yml").read_text())
    container_path = providers["providers"][0]["options"]["path"]
    host_dir = REPO / mounts[container_path]
    dashboard = json.loads((host_dir / "ktf-overview.json").read_text())
    assert dashboard["title"]
    assert dashboard["panels"], "the provisioned dashboard has no panels"
    home = compose["services"]["grafana"]["environment"][
        "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"
    ]
    assert home == f"{container_path}/ktf-overview.json"
