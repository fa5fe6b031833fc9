"""`make demo`'s flow, end to end against the real broker."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.broker
@pytest.mark.timeout(240)
def test_demo_accounts_for_every_task_and_reports_zero_lost(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    env = dict(
        os.environ,
        KTF_BOOTSTRAP_SERVERS=kafka_bootstrap,
        KTF_DEMO_LOG=str(tmp_path / "worker.log"),
    )
    result = subprocess.run(
        [sys.executable, "-m", "framework.demo", "run", "--count", "600", "--timeout", "90"],
        capture_output=True,
        text=True,
        timeout=200,
        env=env,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    match = re.fullmatch(
        r"sent (\d+), replies (\d+), dead letters (\d+), (\d+) lost, [\d.]+ s, \d+ tasks/s",
        summary,
    )
    assert match, summary
    sent, replies, dead, lost = (int(g) for g in match.groups())
    assert (sent, lost) == (600, 0)
    # One divide task in fifty divides by zero: 200 divide tasks -> 4 dead letters.
    assert dead == 4
    assert replies == 596
