"""The ktf command fails with one clear line and a bounded wait, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def ktf(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "framework.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=dict(os.environ, **(env or {})),
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_version_is_printed() -> None:
    result = ktf("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("ktf ")


def test_config_path_that_is_a_directory_is_one_line(tmp_path: Path) -> None:
    result = ktf("groups", "--config", str(tmp_path))
    assert result.returncode == 2
    assert f"config file {tmp_path} cannot be read" in one_line_error(result)


def test_config_file_that_is_not_text_is_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "ktf.toml"
    cfg.write_bytes(b"\xff\xfe\x00garbage")
    result = ktf("groups", "--config", str(cfg))
    assert result.returncode == 2
    assert "is not UTF-8 text" in one_line_error(result)


def test_bad_environment_value_names_the_variable() -> None:
    result = ktf("worker", "--handlers", "handlers.examples", env={"KTF_BATCH_SIZE": "abc"})
    assert result.returncode == 2
    line = one_line_error(result)
    assert "KTF_BATCH_SIZE" in line and "expected an integer" in line


def test_empty_task_id_is_refused() -> None:
    result = ktf("cancel", "")
    assert result.returncode == 2
    assert "TASK_ID must not be empty" in one_line_error(result)


def test_send_without_a_broker_fails_within_its_timeout_in_one_line() -> None:
    started = time.monotonic()
    result = ktf(
        "send",
        "tasks.word-count",
        "--json",
        '{"text": "a"}',
        "--bootstrap-servers",
        "127.0.0.1:1",
        "--timeout",
        "3",
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 2
    assert "cannot read metadata from 127.0.0.1:1 within 3s" in one_line_error(result)
    assert elapsed < 15, f"took {elapsed:.1f} s"
