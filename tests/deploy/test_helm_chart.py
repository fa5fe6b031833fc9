"""The Helm chart lints, renders for every value set, and renders the right objects."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests.deploy.deploy_helpers import (
    CHART,
    NAMESPACE,
    VALUE_SETS,
    Manifest,
    Render,
    by_kind,
    one,
    run_helm,
    validate_manifests,
)

MONITORING_API = "monitoring.coreos.com/v1"


def container_env(sts: Manifest) -> dict[str, dict[str, object]]:
    container = sts["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e for e in container.get("env", [])}


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_helm_lint_strict_passes(helm_bin: str, value_set: str) -> None:
    args = ["lint", "--strict", str(CHART)]
    for v in VALUE_SETS[value_set]:
        args += ["--values", str(CHART / v)]
    proc = run_helm(helm_bin, *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_every_rendered_manifest_validates(
    rendered: dict[str, list[Manifest]], value_set: str
) -> None:
    manifests = rendered[value_set]
    assert by_kind(manifests, "StatefulSet"), "nothing rendered"
    assert validate_manifests(manifests) == []


def test_manifests_with_servicemonitor_validate(render: Render) -> None:
    manifests = render(api_versions=[MONITORING_API])
    assert by_kind(manifests, "ServiceMonitor")
    assert validate_manifests(manifests) == []


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_group_instance_id_comes_from_the_pod_name(
    rendered: dict[str, list[Manifest]], value_set: str
) -> None:
    sts = one(rendered[value_set], "StatefulSet")
    env = container_env(sts)
    assert env["KTF_GROUP_INSTANCE_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert sts["spec"]["serviceName"] == one(rendered[value_set], "Service")["metadata"]["name"]


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_probes_use_the_metrics_port_and_health_paths(
    rendered: dict[str, list[Manifest]], value_set: str
) -> None:
    container = one(rendered[value_set], "StatefulSet")["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    env = container_env(one(rendered[value_set], "StatefulSet"))
    assert str(ports["metrics"]) == env["KTF_METRICS_PORT"]["value"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}


@pytest.mark.parametrize(
    "sets",
    [[], ["drainTimeoutSeconds=120"], ["drainTimeoutSeconds=5", "shutdownMarginSeconds=20"]],
)
def test_grace_period_covers_the_drain_timeout(render: Render, sets: list[str]) -> None:
    sts = one(render(sets=sets), "StatefulSet")
    drain = int(container_env(sts)["KTF_DRAIN_TIMEOUT"]["value"])  # type: ignore[call-overload]
    grace = sts["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    expected_drain = {"drainTimeoutSeconds": 30, "shutdownMarginSeconds": 15}
    for s in sets:
        key, _, value = s.partition("=")
        expected_drain[key] = int(value)
    assert drain == expected_drain["drainTimeoutSeconds"]
    assert grace == drain + expected_drain["shutdownMarginSeconds"]
    assert grace > drain


@pytest.mark.parametrize(
    ("value_set", "scaledobjects", "hpas"),
    [("default", 0, 0), ("keda", 1, 0), ("keda-prometheus", 1, 0), ("hpa", 0, 1)],
)
def test_keda_and_hpa_are_never_both_rendered(
    rendered: dict[str, list[Manifest]], value_set: str, scaledobjects: int, hpas: int
) -> None:
    manifests = rendered[value_set]
    assert len(by_kind(manifests, "ScaledObject")) == scaledobjects
    assert len(by_kind(manifests, "HorizontalPodAutoscaler")) == hpas
    sts = one(manifests, "StatefulSet")
    # Under an autoscaler the StatefulSet must not pin replicas (they would fight).
    assert ("replicas" in sts["spec"]) == (scaledobjects + hpas == 0)


def test_autoscaling_mode_outside_the_switch_is_rejected(helm_bin: str) -> None:
    proc = run_helm(helm_bin, "lint", "--strict", str(CHART), "--set", "autoscaling.mode=both")
    assert proc.returncode != 0
    assert "autoscaling" in (proc.stdout + proc.stderr)


def test_keda_scales_the_statefulset_on_the_groups_lag(
    rendered: dict[str, list[Manifest]],
) -> None:
    manifests = rendered["keda"]
    scaled = one(manifests, "ScaledObject")
    sts = one(manifests, "StatefulSet")
    assert scaled["spec"]["scaleTargetRef"]["kind"] == "StatefulSet"
    assert scaled["spec"]["scaleTargetRef"]["name"] == sts["metadata"]["name"]
    trigger = scaled["spec"]["triggers"][0]
    assert trigger["type"] == "kafka"
    config = one(manifests, "ConfigMap")["data"]
    assert trigger["metadata"]["consumerGroup"] == config["KTF_GROUP_ID"]
    assert trigger["metadata"]["bootstrapServers"] == config["KTF_BOOTSTRAP_SERVERS"]
    assert trigger["metadata"]["lagThreshold"] == "500"


def test_keda_prometheus_trigger_queries_ktf_consumer_lag(
    rendered: dict[str, list[Manifest]],
) -> None:
    trigger = one(rendered["keda-prometheus"], "ScaledObject")["spec"]["triggers"][0]
    assert trigger["type"] == "prometheus"
    assert "ktf_consumer_lag" in trigger["metadata"]["query"]
    assert f'namespace="{NAMESPACE}"' in trigger["metadata"]["query"]


def test_hpa_targets_the_statefulset_on_external_lag(rendered: dict[str, list[Manifest]]) -> None:
    hpa = one(rendered["hpa"], "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["kind"] == "StatefulSet"
    metric = hpa["spec"]["metrics"][0]
    assert metric["type"] == "External"
    assert metric["external"]["metric"]["name"] == "ktf_consumer_lag"
    assert metric["external"]["target"] == {"type": "AverageValue", "averageValue": "2000"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 8)


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_pdb_allows_one_pod_away_and_selects_the_workers(
    rendered: dict[str, list[Manifest]], value_set: str
) -> None:
    pdb = one(rendered[value_set], "PodDisruptionBudget")
    sts = one(rendered[value_set], "StatefulSet")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert "minAvailable" not in pdb["spec"]
    assert pdb["spec"]["selector"] == sts["spec"]["selector"]


def test_servicemonitor_only_when_the_api_exists(render: Render) -> None:
    assert by_kind(render(), "ServiceMonitor") == []
    monitors = by_kind(render(api_versions=[MONITORING_API]), "ServiceMonitor")
    assert len(monitors) == 1
    assert monitors[0]["spec"]["endpoints"][0]["port"] == "metrics"
    assert (
        by_kind(
            render(api_versions=[MONITORING_API], sets=["metrics.serviceMonitor.enabled=false"]),
            "ServiceMonitor",
        )
        == []
    )


def test_headless_service_exposes_metrics_of_every_pod(
    rendered: dict[str, list[Manifest]],
) -> None:
    svc = one(rendered["default"], "Service")
    sts = one(rendered["default"], "StatefulSet")
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["ports"] == [
        {"name": "metrics", "port": 9100, "targetPort": "metrics", "protocol": "TCP"}
    ]
    assert svc["spec"]["selector"] == sts["spec"]["selector"]["matchLabels"]


def test_configuration_comes_from_the_configmap(rendered: dict[str, list[Manifest]]) -> None:
    manifests = rendered["default"]
    cm = one(manifests, "ConfigMap")
    sts = one(manifests, "StatefulSet")
    container = sts["spec"]["template"]["spec"]["containers"][0]
    assert container["envFrom"] == [{"configMapRef": {"name": cm["metadata"]["name"]}}]
    assert cm["data"]["KTF_HANDLERS"] == "handlers.examples"
    assert cm["data"]["KTF_SECURITY_PROTOCOL"] == "PLAINTEXT"
    assert "checksum/config" in sts["spec"]["template"]["metadata"]["annotations"]


def test_sasl_and_tls_credentials_are_secret_references(
    rendered: dict[str, list[Manifest]],
) -> None:
    manifests = rendered["sasl-tls"]
    assert by_kind(manifests, "Secret") == [], "the chart must never carry credentials"
    cm = one(manifests, "ConfigMap")["data"]
    assert cm["KTF_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert cm["KTF_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert "KTF_SASL_PASSWORD" not in cm
    for workload in (one(manifests, "StatefulSet"), one(manifests, "Job")):
        pod = workload["spec"]["template"]["spec"]
        env = {e["name"]: e for e in pod["containers"][0]["env"]}
        assert env["KTF_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": "ktf-kafka-credentials",
            "key": "password",
        }
        assert env["KTF_SASL_USERNAME"]["valueFrom"]["secretKeyRef"]["name"] == (
            "ktf-kafka-credentials"
        )
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["kafka-tls"]["secret"]["secretName"] == "ktf-kafka-tls"
        mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
        assert mounts["kafka-tls"]["mountPath"] == "/etc/ktf/tls"
        assert mounts["kafka-tls"]["readOnly"] is True
    auth = one(manifests, "TriggerAuthentication")
    params = {r["parameter"] for r in auth["spec"]["secretTargetRef"]}
    assert params == {"username", "password", "ca", "cert", "key", "keyPassword"}


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["auth.sasl.enabled=true"], "auth.sasl.existingSecret"),
        (["tls.enabled=true"], "tls.existingSecret"),
    ],
)
def test_credentials_without_a_secret_fail_with_one_clear_line(
    helm_bin: str, sets: list[str], message: str
) -> None:
    args = ["template", "x", str(CHART)]
    for s in sets:
        args += ["--set", s]
    proc = run_helm(helm_bin, *args)
    assert proc.returncode != 0
    assert message in proc.stderr


@pytest.mark.parametrize(
    ("sets", "expected_mib"),
    [
        # (128 + 16384/1024 + 18 * 1 MiB + 20000 * 2048 B) * 1.25: 12 partitions of each
        # of the 3 default task topics (no retry tiers) over 2 replicas = 18 per pod
        ([], (128 + 16 + 18 + (20000 * 2048) // 2**20) * 125 // 100),
        (
            [
                "worker.queuedMaxKbytes=65536",
                "sizing.maxPartitionsPerPod=24",
                "worker.maxBuffered=1000",
                "sizing.headroomPercent=0",
            ],
            128 + 64 + 24 + (1000 * 2048) // 2**20,
        ),
    ],
)
def test_memory_request_is_sized_for_the_prefetch(
    render: Render, sets: list[str], expected_mib: int
) -> None:
    container = one(render(sets=sets), "StatefulSet")["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["requests"]["memory"] == f"{expected_mib}Mi"
    assert container["resources"]["limits"]["memory"] == f"{expected_mib}Mi"


def test_explicit_memory_request_wins_over_the_formula(render: Render) -> None:
    container = one(render(sets=["resources.requests.memory=1Gi"]), "StatefulSet")["spec"][
        "template"
    ]["spec"]["containers"][0]
    assert container["resources"]["requests"]["memory"] == "1Gi"


def test_topics_job_hook_runs_topics_ensure_before_install_and_upgrade(
    rendered: dict[str, list[Manifest]],
) -> None:
    job = one(rendered["default"], "Job")
    hooks = job["metadata"]["annotations"]["helm.sh/hook"].split(",")
    assert set(hooks) == {"pre-install", "pre-upgrade"}
    assert job["spec"]["activeDeadlineSeconds"] > 0, "a hook must never hang an upgrade"
    container = job["spec"]["template"]["spec"]["containers"][0]
    args = container["args"]
    assert args[:2] == ["topics", "ensure"]
    assert args[args.index("--handlers") + 1] == "handlers.examples"
    assert args[args.index("--partitions") + 1] == "12"
    assert args[args.index("--replication-factor") + 1] == "3"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["KTF_BOOTSTRAP_SERVERS"] == "kafka:9092"


def test_notes_tell_how_to_watch_lag(helm_bin: str, tmp_path: Path) -> None:
    # helm template does not render NOTES.txt, so render it as a template of a copy.
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    notes = (chart / "templates" / "NOTES.txt").read_text()
    (chart / "templates" / "_notes_under_test.tpl").write_text(
        '{{- define "notes.under.test" -}}\n' + notes + "\n{{- end -}}\n"
    )
    (chart / "templates" / "notes-under-test.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  notes: |-\n"
        '{{ include "notes.under.test" . | indent 4 }}\n'
    )
    proc = run_helm(
        helm_bin,
        "template",
        "ktf",
        str(chart),
        "--namespace",
        NAMESPACE,
        "--show-only",
        "templates/notes-under-test.yaml",
    )
    assert proc.returncode == 0, proc.stderr
    text = yaml.safe_load(proc.stdout)["data"]["notes"]
    assert "ktf lag --group ktf-workers" in text
    assert "ktf_consumer_lag" in text
