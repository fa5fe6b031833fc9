"""DLQ helpers: replay headers, filters and time parsing (no broker)."""

from __future__ import annotations

import pytest

from framework import headers as h
from framework.errors import ConfigError, KafkaError
from framework.routing.dlq import (
    DlqFilter,
    DlqRecord,
    dlq_name,
    parse_time,
    replay_headers,
    replay_target,
)


def _rec(**headers: str) -> DlqRecord:
    return DlqRecord("t.dlq", 2, 17, 5_000, b"k", b"v", h.encode(headers))


FULL = {
    h.TASK_ID: "id-1",
    h.ATTEMPT: "3",
    h.REPLY_TO: "t.reply",
    h.CORRELATION_ID: "c",
    h.DEADLINE: "99999999999999",
    h.NOT_BEFORE: "123",
    h.TRACEPARENT: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    h.ERROR_TYPE: "RuntimeError",
    h.ERROR_MESSAGE: "boom",
    h.ERROR_STACK: "Traceback",
    h.ORIGINAL_TOPIC: "t",
    h.ORIGINAL_PARTITION: "0",
    h.ORIGINAL_OFFSET: "4",
    h.ORIGINAL_TIMESTAMP: "1",
    h.CONSUMER_GROUP: "g",
    h.FAILED_AT: "6000",
}


def test_replay_headers_reset_the_attempt_drop_failure_state_and_link_back() -> None:
    out = h.to_dict(replay_headers(_rec(**FULL)))  # type: ignore[arg-type]
    assert out[h.ATTEMPT] == "1"
    assert out[h.REPLAYED_FROM] == "t.dlq/2/17"
    for kept in (h.TASK_ID, h.REPLY_TO, h.CORRELATION_ID, h.DEADLINE, h.TRACEPARENT):
        assert out[kept] == FULL[kept]
    for dropped in (
        h.NOT_BEFORE,
        h.ERROR_TYPE,
        h.ERROR_MESSAGE,
        h.ERROR_STACK,
        h.ORIGINAL_TOPIC,
        h.ORIGINAL_OFFSET,
        h.CONSUMER_GROUP,
        h.FAILED_AT,
    ):
        assert dropped not in out
    assert [k for k, _ in replay_headers(_rec(**FULL))].count(h.ATTEMPT) == 1


def test_replay_target_is_the_original_topic_and_required() -> None:
    assert replay_target(_rec(**FULL)) == "t"
    with pytest.raises(KafkaError, match=r"t\.dlq/2/17 has no ktf-original-topic"):
        replay_target(_rec(**{h.TASK_ID: "x"}))


def test_filters_by_error_type_and_failure_time() -> None:
    rec = _rec(**FULL)  # failed at 6000
    assert DlqFilter().matches(rec)
    assert DlqFilter(error_type="RuntimeError").matches(rec)
    assert not DlqFilter(error_type="Reject").matches(rec)
    assert DlqFilter(since_ms=6000, until_ms=6001).matches(rec)
    assert not DlqFilter(since_ms=6001).matches(rec)
    assert not DlqFilter(until_ms=6000).matches(rec)
    assert _rec().failed_at == 5_000  # no header: the record timestamp


def test_times_are_epoch_ms_or_iso_8601() -> None:
    assert parse_time("1700000000000") == 1_700_000_000_000
    assert parse_time("2023-11-14T22:13:20Z") == 1_700_000_000_000
    assert parse_time("2023-11-14T22:13:20") == 1_700_000_000_000  # UTC when no zone
    assert parse_time("2023-11-14T23:13:20+01:00") == 1_700_000_000_000
    with pytest.raises(ConfigError, match="yesterday"):
        parse_time("yesterday")


def test_dlq_name_accepts_task_or_dlq_topic() -> None:
    assert dlq_name("tasks.a") == "tasks.a.dlq"
    assert dlq_name("tasks.a.dlq") == "tasks.a.dlq"
