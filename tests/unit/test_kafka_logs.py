"""librdkafka log lines are rate-limited: a down broker does not flood the logs."""

from __future__ import annotations

import logging

from framework.kafka.logs import RepeatFilter


def _record(msg: str) -> logging.LogRecord:
    return logging.LogRecord("librdkafka", logging.ERROR, "", 0, msg, None, None)


def test_repeats_differing_only_in_numbers_pass_once_per_window() -> None:
    f = RepeatFilter(window=60.0)
    first = _record("Connect to 127.0.0.1:9092 failed (after 0ms in state CONNECT)")
    assert f.filter(first)
    for ms in range(1, 50):
        assert not f.filter(
            _record(f"Connect to 127.0.0.1:9092 failed (after {ms}ms in state CONNECT)")
        )
    assert f.filter(_record("a different problem"))


def test_after_the_window_the_message_passes_with_a_count_of_what_was_held() -> None:
    f = RepeatFilter(window=0.0)
    assert f.filter(_record("broker down"))
    f.window = 3600.0
    assert not f.filter(_record("broker down"))
    assert not f.filter(_record("broker down"))
    f.window = 0.0
    again = _record("broker down")
    assert f.filter(again)
    assert "and 2 more like it" in again.getMessage()
