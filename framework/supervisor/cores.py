"""How many worker processes ``--processes auto`` means: the cores this pod may use.

``os.cpu_count()`` is the node's cores; a container is limited twice over: by its
CPU affinity (cpusets) and by its CFS quota (Kubernetes ``resources.limits.cpu``).
Both are read; a fractional quota rounds up (1.5 CPUs -> 2 processes that share it,
so neither core sits idle while the other process waits on I/O).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from framework.errors import ConfigError

__all__ = ["cgroup_cpu_limit", "process_count", "usable_cores"]

_CGROUP = Path("/sys/fs/cgroup")


def usable_cores(cgroup_root: Path = _CGROUP) -> int:
    """Cores this process may run on: affinity, capped by the cgroup CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    limit = cgroup_cpu_limit(cgroup_root)
    if limit is not None:
        cores = min(cores, math.ceil(limit))
    return max(1, cores)


def cgroup_cpu_limit(root: Path = _CGROUP) -> float | None:
    """CPUs allowed by the cgroup quota (v2 ``cpu.max`` or v1 CFS files); None: no quota."""
    for own in _own_cgroup_dirs(root):
        try:
            quota, _, period = (own / "cpu.max").read_text().strip().partition(" ")
        except OSError:
            continue
        if quota == "max" or not period:
            return None
        return _ratio(quota, period)
    v1 = root / "cpu"
    try:
        quota = (v1 / "cpu.cfs_quota_us").read_text().strip()
        period = (v1 / "cpu.cfs_period_us").read_text().strip()
    except OSError:
        return None
    if quota.startswith("-"):
        return None
    return _ratio(quota, period)


def _own_cgroup_dirs(root: Path) -> list[Path]:
    """The v2 cgroup of this process (from /proc/self/cgroup), then the root."""
    dirs: list[Path] = []
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                rel = line[3:].strip().lstrip("/")
                if rel:
                    dirs.append(root / rel)
    except OSError:
        pass
    dirs.append(root)
    return dirs


def _ratio(quota: str, period: str) -> float | None:
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None


def process_count(value: str) -> int:
    """``processes`` setting -> a number of worker processes (``auto``: usable cores)."""
    if value == "auto":
        return usable_cores()
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise ConfigError(f"processes must be a whole number >= 1 or 'auto', got {value!r}")
    return n
