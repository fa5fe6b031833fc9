"""Helpers for validating the deployment artefacts with the real tools.

``helm`` is built from the Go module proxy by ``scripts/install-helm.sh`` into a cache
outside the repository; when it cannot be had the tests fail saying so, they never
skip. Kubernetes objects are validated offline against the Kubernetes JSON schemas of
``kubernetes-validate``; CRD objects (KEDA, Prometheus Operator), which those schemas do
not cover, are checked against the structural schemas in ``crd_schemas.py``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import pytest

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "ktf-worker"
INSTALL_HELM = REPO / "scripts" / "install-helm.sh"
# The cluster version the manifests are rendered for and validated against.
KUBE_VERSION = "1.33.0"
RELEASE = "ktf"
NAMESPACE = "tasks"

# Value sets the chart must render and validate with; files live in the chart's ci/
# directory (the chart-testing convention), "default" means the chart's values.yaml.
VALUE_SETS: dict[str, list[str]] = {
    "default": [],
    "keda": ["ci/keda-values.yaml"],
    "keda-prometheus": ["ci/keda-prometheus-values.yaml"],
    "hpa": ["ci/hpa-values.yaml"],
    "sasl-tls": ["ci/sasl-tls-values.yaml"],
}

Manifest = dict[str, Any]
Render = Callable[..., list[Manifest]]


# Structural schemas of the CRD objects the chart renders (subset of the published CRDs
# of KEDA 2.x and Prometheus Operator): required fields, types, and no unknown fields
# where a typo would silently disable something.
_META = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string", "minLength": 1}, "labels": {"type": "object"}},
}
_STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_SECRET_REF = {
    "type": "object",
    "additionalProperties": False,
    "required": ["parameter", "name", "key"],
    "properties": {
        "parameter": {"type": "string"},
        "name": {"type": "string", "minLength": 1},
        "key": {"type": "string", "minLength": 1},
    },
}


def _crd(api: str, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": api},
            "kind": {"const": kind},
            "metadata": _META,
            "spec": spec,
        },
    }


CRD_SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    ("keda.sh/v1alpha1", "ScaledObject"): _crd(
        "keda.sh/v1alpha1",
        "ScaledObject",
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["scaleTargetRef", "triggers"],
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["name"],
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "name": {"type": "string", "minLength": 1},
                    },
                },
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "pollingInterval": {"type": "integer", "minimum": 1},
                "cooldownPeriod": {"type": "integer", "minimum": 0},
                "advanced": {"type": "object"},
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["type", "metadata"],
                        "properties": {
                            "type": {"enum": ["kafka", "apache-kafka", "prometheus"]},
                            "metadata": _STR_MAP,
                            "authenticationRef": {
                                "type": "object",
                                "required": ["name"],
                                "properties": {"name": {"type": "string"}},
                            },
                        },
                    },
                },
            },
        },
    ),
    ("keda.sh/v1alpha1", "TriggerAuthentication"): _crd(
        "keda.sh/v1alpha1",
        "TriggerAuthentication",
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["secretTargetRef"],
            "properties": {
                "secretTargetRef": {"type": "array", "minItems": 1, "items": _SECRET_REF}
            },
        },
    ),
    ("monitoring.coreos.com/v1", "ServiceMonitor"): _crd(
        "monitoring.coreos.com/v1",
        "ServiceMonitor",
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["selector", "endpoints"],
            "properties": {
                "selector": {
                    "type": "object",
                    "required": ["matchLabels"],
                    "properties": {"matchLabels": _STR_MAP},
                },
                "namespaceSelector": {"type": "object"},
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["port"],
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string", "pattern": "^/"},
                            "interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                            "scrapeTimeout": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                        },
                    },
                },
            },
        },
    ),
}


def venv_tool(name: str) -> str:
    """A console script installed next to the running interpreter (the dev extras)."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        pytest.fail(
            f"{name} is not installed: pip install -e '.[dev]' provides it "
            "(the deploy checks never skip)"
        )
    return found


def run_helm(helm: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run helm with a private, empty Helm home so no user config or repo leaks in."""
    home = Path(os.environ.get("KTF_CACHE_DIR", Path.home() / ".cache" / "ktf")) / "helm-home"
    env = {
        **os.environ,
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    return subprocess.run(
        [helm, *args], capture_output=True, text=True, timeout=60, check=False, env=env, cwd=cwd
    )


def template_args(
    chart: Path,
    values: Sequence[str] = (),
    sets: Sequence[str] = (),
    api_versions: Sequence[str] = (),
) -> list[str]:
    args = [
        "template",
        RELEASE,
        str(chart),
        "--namespace",
        NAMESPACE,
        "--kube-version",
        KUBE_VERSION,
    ]
    for v in values:
        args += ["--values", str(chart / v)]
    for s in sets:
        args += ["--set", s]
    for api in api_versions:
        args += ["--api-versions", api]
    return args


def by_kind(manifests: Iterable[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m.get("kind") == kind]


def one(manifests: Iterable[Manifest], kind: str) -> Manifest:
    found = by_kind(manifests, kind)
    assert len(found) == 1, f"expected exactly one {kind}, got {len(found)}"
    return found[0]


def validate_manifests(manifests: Iterable[Manifest]) -> list[str]:
    """Every problem found in the manifests, one line each (empty list: all valid).

    Built-in kinds go through kubernetes-validate in strict mode (unknown fields are
    errors); CRD kinds through the structural schemas; an unknown kind is an error.
    """
    from kubernetes_validate import utils as kv  # slow import, only where needed

    problems: list[str] = []
    for m in manifests:
        kind, api = m.get("kind"), m.get("apiVersion")
        name = (m.get("metadata") or {}).get("name")
        where = f"{kind}/{name} ({api})"
        crd = CRD_SCHEMAS.get((str(api), str(kind)))
        if crd is not None:
            validator = jsonschema.Draft7Validator(crd)
            for err in validator.iter_errors(m):
                path = ".".join(str(p) for p in err.absolute_path)
                problems.append(f"{where}: {path}: {err.message}")
            continue
        try:
            kv.validate(m, KUBE_VERSION, strict=True)
        except kv.ValidationError as err:
            path = ".".join(str(p) for p in err.path)
            problems.append(f"{where}: {path}: {err.message}")
        except kv.SchemaNotFoundError as err:
            problems.append(f"{where}: no schema: {err.message}")
    return problems
