"""The chart's ``worker.processes``: the supervisor's flag and memory sized per process."""

from __future__ import annotations

import pytest

from tests.deploy.deploy_helpers import CHART, Manifest, Render, one, run_helm

PER_PROCESS = 128 + 16384 // 1024 + (20000 * 2048) // 2**20  # base + prefetch queue + buffers
# Partitions per pod (computed: 12 x 3 topics / 2 replicas) x 1 MiB, split among processes.
FETCH = 18
SUPERVISOR = 48


def _container(manifests: list[Manifest]) -> dict[str, object]:
    sts = one(manifests, "StatefulSet")
    container: dict[str, object] = sts["spec"]["template"]["spec"]["containers"][0]
    return container


def test_one_process_runs_the_plain_worker(render: Render) -> None:
    c = _container(render())
    assert c["args"] == ["worker"]
    assert c["resources"]["requests"]["memory"] == f"{(PER_PROCESS + FETCH) * 125 // 100}Mi"  # type: ignore[index]


@pytest.mark.parametrize(
    ("sets", "processes"),
    [
        (["worker.processes=3"], 3),
        # auto: the CPU limit rounded up, which is what the container's cgroup quota says
        (["worker.processes=auto", "resources.limits.cpu=1500m"], 2),
        (["worker.processes=auto", "resources.limits.cpu=4"], 4),
    ],
)
def test_processes_pass_the_flag_and_size_memory_for_every_process(
    render: Render, sets: list[str], processes: int
) -> None:
    c = _container(render(sets=sets))
    assert c["args"] == ["worker", "--processes", str(processes)]
    mib = (processes * PER_PROCESS + FETCH + SUPERVISOR) * 125 // 100
    assert c["resources"]["requests"]["memory"] == f"{mib}Mi"  # type: ignore[index]
    assert c["resources"]["limits"]["memory"] == f"{mib}Mi"  # type: ignore[index]


def test_auto_without_a_cpu_limit_fails_with_one_clear_line(helm_bin: str) -> None:
    proc = run_helm(helm_bin, "template", "x", str(CHART), "--set", "worker.processes=auto")
    assert proc.returncode != 0
    assert "worker.processes=auto needs resources.limits.cpu" in proc.stderr


@pytest.mark.parametrize("value", ["0", "many"])
def test_a_bad_process_count_is_refused_by_the_schema(helm_bin: str, value: str) -> None:
    proc = run_helm(helm_bin, "template", "x", str(CHART), "--set", f"worker.processes={value}")
    assert proc.returncode != 0
    assert "/worker/processes" in proc.stderr
