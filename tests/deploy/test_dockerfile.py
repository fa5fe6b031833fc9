"""The worker image: multi-stage, slim, non-root, installed as a wheel, linted."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.deploy.deploy_helpers import REPO, venv_tool

DOCKERFILE = REPO / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def test_hadolint_passes() -> None:
    proc = subprocess.run(
        [venv_tool("hadolint"), str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_image_is_multi_stage_on_a_slim_base() -> None:
    froms = [args for word, args in instructions() if word == "FROM"]
    assert len(froms) >= 2
    args = dict(a.split("=", 1) for w, a in instructions() if w == "ARG" and "=" in a)
    base = args.get("PYTHON_IMAGE", "")
    assert "slim" in base and base.startswith("python:3.11"), base


def test_runtime_stage_runs_as_non_root_ktf_worker() -> None:
    steps = instructions()
    last_from = max(i for i, (w, _) in enumerate(steps) if w == "FROM")
    runtime = steps[last_from:]
    users = [a for w, a in runtime if w == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert ("ENTRYPOINT", '["ktf"]') in runtime
    assert ("CMD", '["worker"]') in runtime


def test_project_is_installed_as_a_wheel() -> None:
    runs = " ".join(a for w, a in instructions() if w == "RUN")
    assert "pip wheel" in runs
    assert re.search(r"pip install (-c constraints.txt )?/wheels/\S+\.whl", runs)


def test_schemas_are_in_the_image_where_the_worker_looks() -> None:
    steps = instructions()
    copies = [a for w, a in steps if w == "COPY" and "schemas" in a]
    assert copies and copies[-1].split()[-1] == "/app/schemas/"
    env = " ".join(a for w, a in steps if w == "ENV")
    assert "KTF_SCHEMAS_DIR=/app/schemas" in env


@pytest.mark.parametrize(
    "source", ["pyproject.toml", "README.md", "framework/", "handlers/", "schemas/"]
)
def test_build_context_holds_what_the_dockerfile_copies(source: str) -> None:
    copied = " ".join(a for w, a in instructions() if w == "COPY" and "--from" not in a)
    assert source in copied
    assert (REPO / source).exists(), f"{source} is copied into the image but missing"
    allowed = (REPO / ".dockerignore").read_text().splitlines()
    assert f"!{source}" in allowed, f".dockerignore keeps {source} out of the build context"


def test_image_installs_under_the_tested_constraints() -> None:
    runs = [args for word, args in instructions() if word == "RUN"]
    installs = [r for r in runs if "pip install" in r]
    assert installs, "no pip install in the Dockerfile"
    for run in installs:
        for part in run.split("&&"):
            if "pip install" in part:
                assert "-c constraints.txt" in part, part
    copies = " ".join(args for word, args in instructions() if word == "COPY")
    assert "constraints.txt" in copies


def test_constraints_pin_every_runtime_dependency_at_the_tested_version() -> None:
    import sys

    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "pin-constraints.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    pinned = [
        ln for ln in (REPO / "constraints.txt").read_text().splitlines() if ln and ln[0] != "#"
    ]
    assert pinned and all(re.fullmatch(r"[a-z0-9-]+==[0-9][\w.+-]*", ln) for ln in pinned)
    assert {ln.split("==")[0] for ln in pinned} >= {
        "confluent-kafka",
        "fastavro",
        "structlog",
        "tenacity",
        "prometheus-client",
    }
