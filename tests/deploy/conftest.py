"""Session fixtures of the deploy checks: the helm binary and rendered charts."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml

from tests.deploy.deploy_helpers import (
    CHART,
    INSTALL_HELM,
    VALUE_SETS,
    Manifest,
    Render,
    run_helm,
    template_args,
)


@pytest.fixture(scope="session")
def helm_bin() -> str:
    """Path of the pinned helm binary, built once and cached outside the repository."""
    try:
        proc = subprocess.run(
            ["bash", str(INSTALL_HELM)],
            capture_output=True,
            text=True,
            timeout=280,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(
            "helm is not available: scripts/install-helm.sh took over 280 s "
            "(run it once before the tests, as .ci/run does)"
        )
    path = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    if proc.returncode != 0 or not path or not os.access(path, os.X_OK):
        pytest.fail(
            "helm is not available, so the chart cannot be validated: "
            f"scripts/install-helm.sh exited {proc.returncode}: {proc.stderr.strip()[-400:]}"
        )
    return path


@pytest.fixture(scope="session")
def render(helm_bin: str) -> Render:
    """``render(values=[...], sets=[...], api_versions=[...], chart=CHART)`` -> manifests.

    Fails the test with helm's message when rendering fails.
    """

    def _render(
        values: Sequence[str] = (),
        sets: Sequence[str] = (),
        api_versions: Sequence[str] = (),
        chart: Path = CHART,
    ) -> list[Manifest]:
        proc = run_helm(helm_bin, *template_args(chart, values, sets, api_versions))
        if proc.returncode != 0:
            pytest.fail(f"helm template failed: {proc.stderr.strip()}")
        return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]

    return _render


@pytest.fixture(scope="session")
def rendered(render: Render) -> dict[str, list[Manifest]]:
    """Every value set in VALUE_SETS, rendered once per session."""
    return {name: render(values=files) for name, files in VALUE_SETS.items()}
