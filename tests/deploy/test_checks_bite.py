"""The validation is not a rubber stamp: broken copies of the chart and of the compose
file are rejected by the same checks the real ones pass."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.deploy_helpers import CHART, REPO, Render, run_helm, validate_manifests, venv_tool


@pytest.fixture
def chart_copy(tmp_path: Path) -> Path:
    chart = tmp_path / "ktf-worker"
    shutil.copytree(CHART, chart)
    return chart


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}: update this test with the chart"
    path.write_text(text.replace(old, new, 1))


def test_a_misspelt_field_in_a_template_fails_kubernetes_validation(
    render: Render, chart_copy: Path
) -> None:
    _edit(
        chart_copy / "templates" / "statefulset.yaml",
        "      terminationGracePeriodSeconds:",
        "      terminationGracePeriod:",
    )
    problems = validate_manifests(render(chart=chart_copy))
    assert any("StatefulSet/" in p and "terminationGracePeriod" in p for p in problems), problems


def test_a_wrongly_typed_field_fails_kubernetes_validation(
    render: Render, chart_copy: Path
) -> None:
    _edit(
        chart_copy / "templates" / "pdb.yaml",
        "maxUnavailable: 1",
        "maxUnavailable: [1]",
    )
    problems = validate_manifests(render(chart=chart_copy))
    assert any("PodDisruptionBudget/" in p for p in problems), problems


def test_a_broken_crd_object_fails_structural_validation(render: Render, chart_copy: Path) -> None:
    _edit(chart_copy / "templates" / "scaledobject.yaml", "scaleTargetRef:", "scaleTarget:")
    problems = validate_manifests(render(chart=chart_copy, values=["ci/keda-values.yaml"]))
    assert any("ScaledObject/" in p for p in problems), problems


def test_a_value_outside_the_schema_fails_lint(helm_bin: str, chart_copy: Path) -> None:
    _edit(chart_copy / "values.yaml", "drainTimeoutSeconds: 30", 'drainTimeoutSeconds: "30s"')
    proc = run_helm(helm_bin, "lint", "--strict", str(chart_copy))
    assert proc.returncode != 0
    assert "drainTimeoutSeconds" in proc.stdout + proc.stderr


def test_a_misspelt_value_key_fails_lint(helm_bin: str, chart_copy: Path) -> None:
    _edit(chart_copy / "values.yaml", "replicaCount: 2", "replicaCount: 2\nreplicasCount: 3")
    proc = run_helm(helm_bin, "lint", "--strict", str(chart_copy))
    assert proc.returncode != 0
    assert "replicasCount" in proc.stdout + proc.stderr


def test_a_template_syntax_error_fails_lint(helm_bin: str, chart_copy: Path) -> None:
    _edit(chart_copy / "templates" / "pdb.yaml", "{{- end }}", "{{- end")
    proc = run_helm(helm_bin, "lint", "--strict", str(chart_copy))
    assert proc.returncode != 0


def _compose_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [venv_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("service", "key", "bad"),
    [
        ("worker", "depends_on", {"topics-init": {"condition": "service_finished"}}),
        ("kafka", "ports", {"9092": 9092}),
        ("worker", "restartt", "always"),
    ],
)
def test_a_broken_compose_file_fails_the_compose_spec(
    tmp_path: Path, service: str, key: str, bad: object
) -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    compose["services"][service][key] = bad
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(yaml.safe_dump(compose))
    proc = _compose_check(broken)
    assert proc.returncode != 0, proc.stdout


def test_a_broken_dockerfile_fails_hadolint(tmp_path: Path) -> None:
    broken = tmp_path / "Dockerfile"
    broken.write_text(
        "FROM python:latest\nRUN apt-get update && apt-get install curl\nCMD ktf worker\n"
    )
    proc = subprocess.run(
        [venv_tool("hadolint"), str(broken)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode != 0
    assert "DL3007" in proc.stdout  # "latest" tag
