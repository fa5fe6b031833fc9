"""``--processes auto``: usable cores from CPU affinity and the cgroup quota."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from framework import ConfigError
from framework.supervisor.cores import cgroup_cpu_limit, process_count, usable_cores


def test_cgroup_v2_quota_is_read_and_max_means_none(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cgroup_cpu_limit(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_limit(tmp_path) is None


def test_cgroup_v1_quota_is_read_and_minus_one_means_none(tmp_path: Path) -> None:
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("300000\n")
    assert cgroup_cpu_limit(tmp_path) == 3.0
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_cpu_limit(tmp_path) is None


def test_a_fractional_quota_rounds_up_and_never_exceeds_the_affinity(tmp_path: Path) -> None:
    affinity = len(os.sched_getaffinity(0))
    (tmp_path / "cpu.max").write_text("50000 100000\n")
    assert usable_cores(tmp_path) == 1
    (tmp_path / "cpu.max").write_text(f"{(affinity + 8) * 100000} 100000\n")
    assert usable_cores(tmp_path) == affinity


def test_process_count_accepts_auto_and_whole_numbers_only() -> None:
    assert process_count("3") == 3
    assert process_count("auto") == usable_cores()
    for bad in ("0", "-1", "two", "1.5"):
        with pytest.raises(ConfigError, match="processes must be a whole number"):
            process_count(bad)
