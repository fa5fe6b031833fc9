"""Task headers and deadlines: pure logic, no broker."""

from __future__ import annotations

import datetime as dt

import pytest

from framework import headers as h
from framework.client import deadline_ms, new_id, new_traceparent, task_headers
from framework.errors import ConfigError
from framework.observability.tracing import parse_traceparent


def test_deadline_float_is_seconds_from_now() -> None:
    assert deadline_ms(30.0, now=1_700_000_000.0) == 1_700_000_030_000


def test_deadline_timedelta_is_from_now() -> None:
    assert deadline_ms(dt.timedelta(minutes=1), now=1_700_000_000.0) == 1_700_000_060_000


def test_deadline_datetime_is_that_instant() -> None:
    when = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    assert deadline_ms(when) == int(when.timestamp()) * 1000


def test_deadline_int_is_epoch_ms() -> None:
    assert deadline_ms(1_900_000_000_000) == 1_900_000_000_000


def test_deadline_small_int_is_refused_as_probably_seconds() -> None:
    with pytest.raises(ConfigError, match="pass a float"):
        deadline_ms(30)


def test_deadline_rejects_bool_and_non_positive() -> None:
    with pytest.raises(ConfigError):
        deadline_ms(True)
    with pytest.raises(ConfigError):
        deadline_ms(-1.0)


def test_task_headers_carry_the_contract() -> None:
    hdrs = dict(task_headers("abc", deadline=123, reply_to="r", correlation_id="c"))
    assert hdrs[h.TASK_ID] == b"abc"
    assert hdrs[h.ATTEMPT] == b"1"
    assert hdrs[h.DEADLINE] == b"123"
    assert hdrs[h.REPLY_TO] == b"r"
    assert hdrs[h.CORRELATION_ID] == b"c"
    assert parse_traceparent(hdrs[h.TRACEPARENT].decode()) is not None


def test_task_headers_keep_a_callers_traceparent() -> None:
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    hdrs = task_headers("t", extra={h.TRACEPARENT: parent, "x-user": "me"})
    assert [v for k, v in hdrs if k == h.TRACEPARENT] == [parent.encode()]
    assert (b"me") in [v for k, v in hdrs if k == "x-user"]


def test_task_headers_refuse_to_override_owned_headers() -> None:
    with pytest.raises(ConfigError, match="ktf-task-id"):
        task_headers("t", extra={h.TASK_ID: "other"})


def test_ids_and_traces_are_fresh_and_well_formed() -> None:
    assert len({new_id() for _ in range(1000)}) == 1000
    assert all(len(new_id()) == 32 for _ in range(10))
    assert parse_traceparent(new_traceparent()) is not None
