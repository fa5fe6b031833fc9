"""Structured logs: JSON lines carrying the task context, stdlib logging routed too."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from framework.errors import ConfigError
from framework.observability.logging import (
    TASK_CONTEXT_FIELDS,
    bind_task_context,
    clear_task_context,
    configure_logging,
    get_logger,
)


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    yield
    clear_task_context()
    root = logging.getLogger()
    for h in [h for h in root.handlers if getattr(h, "_ktf", False)]:
        root.removeHandler(h)
    root.setLevel(logging.WARNING)
    structlog.reset_defaults()


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


CONTEXT = {
    "task_id": "t-123",
    "topic": "tasks.resize",
    "partition": 3,
    "offset": 42,
    "attempt": 2,
    "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
}


def test_failing_task_log_line_is_json_with_every_context_field(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", "auto")  # captured stderr is not a TTY -> JSON
    log = get_logger("ktf.test")
    bind_task_context(**CONTEXT)
    try:
        raise ValueError("bad pixel")
    except ValueError:
        log.exception("task failed", handler="resize")
    err = capsys.readouterr().err
    lines = json_lines(err)
    assert len(lines) == 1
    line = lines[0]
    for key in TASK_CONTEXT_FIELDS:
        assert line[key] == CONTEXT[key]
    assert line["event"] == "task failed"
    assert line["level"] == "error"
    assert line["handler"] == "resize"
    assert line["logger"] == "ktf.test"
    assert "timestamp" in line
    assert "ValueError" in json.dumps(line["exception"])


def test_stdlib_logging_goes_through_the_same_pipeline(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", "json")
    bind_task_context(task_id="t-9", topic="x")
    logging.getLogger("some.library").warning("disk %s is %d%% full", "/data", 91)
    (line,) = json_lines(capsys.readouterr().err)
    assert line["event"] == "disk /data is 91% full"
    assert line["task_id"] == "t-9"
    assert line["level"] == "warning"
    assert line["logger"] == "some.library"


def test_level_filters_debug_lines(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")
    log = get_logger("ktf.test")
    log.debug("per record noise")
    log.info("kept")
    assert [line["event"] for line in json_lines(capsys.readouterr().err)] == ["kept"]


def test_clear_restores_previous_context(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")
    log = get_logger()
    bind_task_context(worker="w1")
    tokens = bind_task_context(task_id="a", offset=None)
    clear_task_context(tokens)
    log.info("after")
    (line,) = json_lines(capsys.readouterr().err)
    assert line["worker"] == "w1"
    assert "task_id" not in line and "offset" not in line


def test_concurrent_tasks_do_not_share_context(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")
    log = get_logger()

    async def task(tid: str) -> None:
        bind_task_context(task_id=tid)
        await asyncio.sleep(0.01)
        log.info("done")

    async def main() -> None:
        await asyncio.gather(task("a"), task("b"))

    asyncio.run(main())
    assert sorted(line["task_id"] for line in json_lines(capsys.readouterr().err)) == ["a", "b"]


def test_console_format_is_not_json() -> None:
    buf = io.StringIO()
    configure_logging("INFO", "console", stream=buf)
    bind_task_context(task_id="t-1")
    get_logger().info("hello")
    out = buf.getvalue()
    assert "hello" in out and "task_id" in out and "t-1" in out
    with pytest.raises(json.JSONDecodeError):
        json.loads(out.splitlines()[0])


def test_auto_uses_console_on_a_tty() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    buf = Tty()
    configure_logging("INFO", "auto", stream=buf)
    get_logger().info("hello")
    assert not buf.getvalue().lstrip().startswith("{")


def test_reconfiguring_does_not_duplicate_lines(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")
    configure_logging("INFO", "json")
    get_logger().info("once")
    assert len(json_lines(capsys.readouterr().err)) == 1


def test_bad_level_and_format_name_the_setting() -> None:
    with pytest.raises(ConfigError, match="log_level"):
        configure_logging("LOUD")
    with pytest.raises(ConfigError, match="log_format"):
        configure_logging("INFO", "xml")
