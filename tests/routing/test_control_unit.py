"""Control records and the cancellation memory: pure logic, no broker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from framework.errors import DecodeError
from framework.routing.control import (
    CONTROL_SCHEMA,
    CancellationMemory,
    Cancellations,
    decode_control,
    encode_control,
)

ROOT = Path(__file__).resolve().parents[2]


def _strip_docs(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_docs(v) for k, v in node.items() if k != "doc"}
    if isinstance(node, list):
        return [_strip_docs(v) for v in node]
    return node


def test_embedded_control_schema_matches_the_avsc_file() -> None:
    on_disk = json.loads((ROOT / "schemas/framework/Control.avsc").read_text())
    assert _strip_docs(on_disk) == CONTROL_SCHEMA


def test_control_records_round_trip_and_garbage_is_rejected() -> None:
    record = decode_control(encode_control("CANCEL", "task-1", "user asked"))
    assert record["action"] == "CANCEL" and record["task_id"] == "task-1"
    assert record["reason"] == "user asked" and record["issued_at"] > 0
    with pytest.raises(DecodeError, match=r"ktf\.control"):
        decode_control(b"\x09\x00")


def test_memory_is_bounded_by_count_oldest_first() -> None:
    mem = CancellationMemory(max_ids=3, window=100, clock=lambda: 0.0)
    for i in range(5):
        mem.add(f"t{i}")
    assert len(mem) == 3
    assert "t0" not in mem and "t1" not in mem
    assert all(f"t{i}" in mem for i in (2, 3, 4))


def test_memory_forgets_after_the_window_counted_from_issue_time() -> None:
    now = [1_000.0]
    mem = CancellationMemory(max_ids=10, window=60, clock=lambda: now[0])
    mem.add("fresh")
    mem.add("old", at=950.0)  # issued 50 s ago: 10 s left
    now[0] = 1_020.0
    assert "fresh" in mem and "old" not in mem
    now[0] = 1_061.0
    assert "fresh" not in mem and len(mem) == 0


def test_cancel_remembers_and_stops_a_running_task_only_inside_the_window() -> None:
    import asyncio

    from framework.config import Settings

    cancelled: list[str] = []

    def cancel_running(task_id: str) -> bool:
        cancelled.append(task_id)
        return True

    loop = asyncio.new_event_loop()
    try:
        svc = Cancellations(Settings(), cancel_running, loop)  # no network until start()
        svc.cancel("t-10")
        assert cancelled == ["t-10"]
        assert svc.is_cancelled("t-10") and not svc.is_cancelled("other")
        # Issued at epoch 0, long outside the window: neither remembered nor acted on,
        # because the runner tells a cancel from a shutdown by the memory.
        svc.cancel("t-9", {"task_id": "t-9", "issued_at": 0, "reason": None})
        assert cancelled == ["t-10"] and not svc.is_cancelled("t-9")
    finally:
        loop.close()


def test_group_less_reader_config_is_accepted_whatever_the_group_settings() -> None:
    from confluent_kafka import Consumer

    from framework.config import Settings
    from framework.routing.reader import reader_conf

    # max.poll.interval.ms below the default session timeout once broke the follower.
    settings = Settings(max_poll_interval_ms=10_000, session_timeout_ms=6_000)
    conf = reader_conf(settings, "control")
    assert "session.timeout.ms" not in conf and "max.poll.interval.ms" not in conf
    Consumer(conf).close()  # no network until used
