"""Sending to a topic that does not exist fails at once, naming the fix."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.broker
def test_send_to_a_missing_topic_fails_at_once_and_names_topics_ensure(
    kafka_bootstrap: str, unique: str
) -> None:
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "framework.cli",
            "send",
            f"{unique}.nowhere",
            "--schema",
            "ktf.examples.WordCountTask",
            "--json",
            '{"text": "a"}',
            "--bootstrap-servers",
            kafka_bootstrap,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=dict(os.environ),
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"topic '{unique}.nowhere' does not exist" in lines[0]
    assert "ktf topics ensure" in lines[0]
    assert elapsed < 15, f"took {elapsed:.1f} s"
