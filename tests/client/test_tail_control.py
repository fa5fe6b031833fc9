"""`ktf tail ktf.control` decodes the framework's own control records."""

from __future__ import annotations

from pathlib import Path

from framework.commands.tail import value_codec
from framework.routing.control import ACTION_CANCEL, encode_control
from framework.serde import SchemaStore

ROOT = Path(__file__).resolve().parents[2]


def test_control_topic_records_decode_without_a_schema_flag() -> None:
    codec = value_codec("ktf.control", {}, SchemaStore.load([ROOT / "schemas"]))
    assert codec is not None
    record = codec.decode(encode_control(ACTION_CANCEL, "task-42", "user gave up"))
    assert record["task_id"] == "task-42"
    assert record["action"] == ACTION_CANCEL
