"""The chart at scale: lag triggers on task topics, replica cap, sizing, spread, digest."""

from __future__ import annotations

import math
from typing import Any

import pytest
import yaml

from framework.registry import load_handlers
from tests.deploy.deploy_helpers import CHART, VALUE_SETS, Manifest, Render, one, validate_manifests

DEFAULT_VALUES = yaml.safe_load((CHART / "values.yaml").read_text())


def pod_spec(manifests: list[Manifest]) -> dict[str, Any]:
    spec: dict[str, Any] = one(manifests, "StatefulSet")["spec"]["template"]["spec"]
    return spec


def test_default_task_topics_are_the_default_handlers_topics() -> None:
    registry = load_handlers(tuple(DEFAULT_VALUES["handlers"].split(",")))
    declared = {t["name"]: tuple(t.get("retryTiers") or ()) for t in DEFAULT_VALUES["taskTopics"]}
    assert declared == {s.topic: s.retry.tiers for s in registry.specs}


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_every_ci_example_scales_on_topics_the_default_handlers_consume(
    rendered: dict[str, list[Manifest]], value_set: str
) -> None:
    consumed = set(load_handlers(tuple(DEFAULT_VALUES["handlers"].split(","))).topics)
    for scaled in [m for m in rendered[value_set] if m["kind"] == "ScaledObject"]:
        for trigger in scaled["spec"]["triggers"]:
            if trigger["type"] == "kafka":
                assert trigger["metadata"]["topic"] in consumed
            else:
                query = trigger["metadata"]["query"]
                regex = query.split("topic=~`", 1)[1].split("`", 1)[0]
                assert set(regex.split("|")) == consumed


def test_keda_kafka_triggers_cover_task_topics_and_never_retry_tiers(render: Render) -> None:
    manifests = render(
        values=["ci/keda-values.yaml"],
        sets=[
            "taskTopics[0].name=tasks.a",
            "taskTopics[0].retryTiers={30s,5m}",
            "taskTopics[1].name=tasks.b",
        ],
    )
    scaled = one(manifests, "ScaledObject")
    topics = [t["metadata"]["topic"] for t in scaled["spec"]["triggers"]]
    assert topics == ["tasks.a", "tasks.b"]
    for trigger in scaled["spec"]["triggers"]:
        assert trigger["metadata"]["allowIdleConsumers"] == "false"
    assert validate_manifests(manifests) == []


def test_prometheus_query_sums_runnable_lag_of_the_task_topics(render: Render) -> None:
    scaled = one(render(values=["ci/keda-prometheus-values.yaml"]), "ScaledObject")
    query = scaled["spec"]["triggers"][0]["metadata"]["query"]
    assert query.startswith("sum(ktf_consumer_lag{")
    assert "topic=~`tasks.word-count|tasks.fetch-url|tasks.divide`" in query
    assert "retry" not in query


@pytest.mark.parametrize(
    ("sets", "cap"),
    [([], 12), (["topics.partitions=4"], 4), (["autoscaling.maxReplicas=3"], 3)],
)
def test_replica_cap_is_the_task_topics_partitions(
    render: Render, sets: list[str], cap: int
) -> None:
    keda = one(render(values=["ci/keda-values.yaml"], sets=sets), "ScaledObject")
    assert keda["spec"]["maxReplicaCount"] == cap
    hpa = one(render(values=["ci/hpa-values.yaml"], sets=sets), "HorizontalPodAutoscaler")
    assert hpa["spec"]["maxReplicas"] == min(cap, 8)  # ci/hpa-values.yaml asks for 8


def _memory_mib(manifests: list[Manifest]) -> int:
    mem = pod_spec(manifests)["containers"][0]["resources"]["requests"]["memory"]
    return int(mem.removesuffix("Mi"))


def test_partitions_per_pod_count_every_handler_topic_and_its_tiers(render: Render) -> None:
    base = [
        "sizing.headroomPercent=0",
        "worker.maxBuffered=1",
        "worker.queuedMaxKbytes=1024",
        "sizing.baseMiB=100",
        "topics.partitions=12",
        "replicaCount=2",
    ]
    # 2 task topics, one with two retry tiers: 4 topics x 12 partitions over 2 pods.
    two_topics = [
        "taskTopics[0].name=tasks.a",
        "taskTopics[0].retryTiers={30s,5m}",
        "taskTopics[1].name=tasks.b",
    ]
    assert _memory_mib(render(sets=base + two_topics)) == 100 + 1 + math.ceil(4 * 12 / 2)
    # Under an autoscaler the fewest pods is minReplicas.
    scaled = render(
        values=["ci/keda-values.yaml"], sets=[*base, *two_topics, "autoscaling.minReplicas=3"]
    )
    assert _memory_mib(scaled) == 100 + 1 + math.ceil(4 * 12 / 3)
    # An explicit figure wins.
    assert _memory_mib(render(sets=[*base, "sizing.maxPartitionsPerPod=7"])) == 100 + 1 + 7


def test_default_pods_spread_softly_over_nodes_and_zones(render: Render) -> None:
    manifests = render()
    spread = pod_spec(manifests)["topologySpreadConstraints"]
    assert [c["topologyKey"] for c in spread] == [
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
    ]
    selector = one(manifests, "StatefulSet")["spec"]["selector"]["matchLabels"]
    for c in spread:
        assert c["whenUnsatisfiable"] == "ScheduleAnyway"  # soft: never blocks scheduling
        assert c["maxSkew"] == 1
        assert c["labelSelector"]["matchLabels"] == selector
    assert validate_manifests(manifests) == []


def test_explicit_spread_replaces_the_default_and_it_can_be_turned_off(render: Render) -> None:
    custom = render(
        sets=[
            "topologySpreadConstraints[0].maxSkew=2",
            "topologySpreadConstraints[0].topologyKey=zone",
            "topologySpreadConstraints[0].whenUnsatisfiable=DoNotSchedule",
        ]
    )
    (only,) = pod_spec(custom)["topologySpreadConstraints"]
    assert only["topologyKey"] == "zone" and only["whenUnsatisfiable"] == "DoNotSchedule"
    assert "topologySpreadConstraints" not in pod_spec(
        render(sets=["topologySpread.enabled=false"])
    )


def test_keda_tls_authentication_passes_the_key_password(
    rendered: dict[str, list[Manifest]],
) -> None:
    manifests = rendered["sasl-tls"]
    refs = {
        r["parameter"]: r
        for r in one(manifests, "TriggerAuthentication")["spec"]["secretTargetRef"]
    }
    env = {e["name"]: e for e in pod_spec(manifests)["containers"][0]["env"]}
    worker_ref = env["KTF_SSL_KEY_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert refs["keyPassword"]["name"] == worker_ref["name"] == "ktf-kafka-tls"
    assert refs["keyPassword"]["key"] == worker_ref["key"] == "key-password"


def test_key_password_without_a_client_key_fails_with_one_line(helm_bin: str) -> None:
    from tests.deploy.deploy_helpers import run_helm

    args = ["template", "x", str(CHART), "--values", str(CHART / "ci/sasl-tls-values.yaml")]
    args += ["--set", "tls.certKey=", "--set", "tls.keyKey="]
    proc = run_helm(helm_bin, *args)
    assert proc.returncode != 0
    assert "tls.keyPasswordKey is set but tls.certKey is not" in proc.stderr


@pytest.mark.parametrize(
    ("sets", "image"),
    [
        ([], "ktf-worker:0.1.0"),
        (["image.digest=sha256:" + "a" * 64], "ktf-worker@sha256:" + "a" * 64),
        (
            ["image.tag=1.2.3", "image.digest=sha256:" + "b" * 64],
            "ktf-worker:1.2.3@sha256:" + "b" * 64,
        ),
    ],
)
def test_image_digest_pins_the_image(render: Render, sets: list[str], image: str) -> None:
    assert pod_spec(render(sets=sets))["containers"][0]["image"] == image


def test_a_malformed_digest_is_rejected_by_the_schema(helm_bin: str) -> None:
    from tests.deploy.deploy_helpers import run_helm

    proc = run_helm(helm_bin, "lint", "--strict", str(CHART), "--set", "image.digest=latest")
    assert proc.returncode != 0
    assert "digest" in proc.stdout + proc.stderr


def test_pods_advertise_their_ip_for_ktf_top(rendered: dict[str, list[Manifest]]) -> None:
    env = {e["name"]: e for e in pod_spec(rendered["default"])["containers"][0]["env"]}
    assert env["KTF_ADVERTISED_HOST"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
