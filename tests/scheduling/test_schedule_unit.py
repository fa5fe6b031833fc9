"""Schedule windows, cron across DST in an explicit zone, config entries, delay tiers."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from framework.config import Settings
from framework.errors import ConfigError
from framework.scheduling import Schedule, periodic
from framework.scheduling.catalog import load_schedules
from framework.scheduling.delay import (
    DELAY_TIERS,
    MAX_DELAY,
    choose_tier,
    delay_topics,
    due_of,
    not_before_ms,
)
from framework.scheduling.schedule import schedule_of

BERLIN = ZoneInfo("Europe/Berlin")
UTC = dt.UTC


def _ms(when: dt.datetime) -> int:
    return int(when.timestamp() * 1000)


def _utc(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, UTC).strftime("%m-%d %H:%M")


def test_every_windows_are_epoch_aligned_and_ids_name_the_due_time() -> None:
    s = Schedule(name="tick", topic="t", every="30s")
    assert s.next_due(0) == 30_000
    assert s.next_due(29_999) == 30_000
    assert s.next_due(30_000) == 60_000  # strictly after
    assert s.due_between(10_000, 100_000, limit=10) == [30_000, 60_000, 90_000]
    assert s.due_between(10_000, 100_000, limit=2) == [30_000, 60_000]
    assert s.task_id(60_000) == "tick@60000"
    assert s.expression == "every 30s"


def test_cron_across_spring_forward_in_berlin_runs_a_missing_time_after_the_gap() -> None:
    # 2024-03-31 02:00 CET jumps to 03:00 CEST: 02:30 does not exist that day.
    s = Schedule(name="nightly", topic="t", cron="30 2 * * *", tz="Europe/Berlin")
    start = _ms(dt.datetime(2024, 3, 29, 12, 0, tzinfo=BERLIN))
    got = [_utc(d) for d in s.due_between(start, start + 4 * 86_400_000, limit=10)]
    # 01:30 UTC (CET) before, 01:00 UTC (= 03:00 CEST, the first instant after the
    # gap) on the day itself, 00:30 UTC (CEST) after: one run per day, none lost.
    assert got == ["03-30 01:30", "03-31 01:00", "04-01 00:30", "04-02 00:30"]


def test_cron_hourly_across_spring_forward_keeps_real_hour_spacing() -> None:
    s = Schedule(name="hourly", topic="t", cron="0 * * * *", tz="Europe/Berlin")
    start = _ms(dt.datetime(2024, 3, 31, 0, 10, tzinfo=BERLIN))
    got = s.due_between(start, start + 4 * 3_600_000, limit=10)
    assert [_utc(d) for d in got] == ["03-31 00:00", "03-31 01:00", "03-31 02:00", "03-31 03:00"]
    assert {b - a for a, b in itertools.pairwise(got)} == {3_600_000}


def test_cron_fixed_hour_across_fall_back_runs_once() -> None:
    # 2024-10-27 03:00 CEST goes back to 02:00 CET: 02:00-02:59 happens twice.
    s = Schedule(name="two-am", topic="t", cron="0 2 * * *", tz="Europe/Berlin")
    start = _ms(dt.datetime(2024, 10, 26, 12, 0, tzinfo=BERLIN))
    got = [_utc(d) for d in s.due_between(start, start + 3 * 86_400_000, limit=10)]
    # Once on the 27th (the first 02:00, 00:00 UTC), then 02:00 CET = 01:00 UTC.
    assert got == ["10-27 00:00", "10-28 01:00", "10-29 01:00"]


def test_cron_interval_across_fall_back_fires_every_real_half_hour() -> None:
    s = Schedule(name="half", topic="t", cron="*/30 * * * *", tz="Europe/Berlin")
    start = _ms(dt.datetime(2024, 10, 26, 23, 50, tzinfo=UTC))  # 01:50 CEST
    got = s.due_between(start, start + 3 * 3_600_000, limit=20)
    assert len(got) == 6 and len(set(got)) == 6
    assert {b - a for a, b in itertools.pairwise(got)} == {1_800_000}


def test_cron_without_zone_is_utc_and_zone_changes_the_instant() -> None:
    utc = Schedule(name="a", topic="t", cron="0 9 * * *")
    tokyo = Schedule(name="b", topic="t", cron="0 9 * * *", tz="Asia/Tokyo")
    start = _ms(dt.datetime(2025, 1, 1, tzinfo=UTC))
    assert _utc(utc.next_due(start)) == "01-01 09:00"
    assert _utc(tokyo.next_due(start)) == "01-02 00:00"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"every": "30s", "cron": "* * * * *"}, "exactly one of every= or cron="),
        ({}, "exactly one of every= or cron="),
        ({"every": "soon"}, "every='soon' is not a period"),
        ({"cron": "61 * * * *"}, "not a valid cron expression"),
        ({"every": "1m", "tz": "Mars/Olympus"}, "not an IANA time zone"),
        ({"every": "1m", "catch_up": "some"}, "catch_up must be one of skip, latest, all"),
        ({"every": "10s", "jitter": 10.0}, "jitter (10.0s) must be below the period"),
        ({"every": "10s", "max_instances": 0}, "max_instances must be >= 1"),
    ],
)
def test_invalid_schedules_name_the_field(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match="schedule 'x'") as info:
        Schedule(name="x", topic="t", **kwargs)
    assert message in str(info.value)


def test_jitter_is_deterministic_per_window_and_below_the_bound() -> None:
    s = Schedule(name="j", topic="t", every="10s", jitter=5.0)
    offsets = [s.jitter_ms(d) for d in range(0, 1_000_000, 10_000)]
    assert offsets == [s.jitter_ms(d) for d in range(0, 1_000_000, 10_000)]
    assert all(0 <= o < 5_000 for o in offsets)
    assert len(set(offsets)) > 50


def test_payload_static_sync_and_async_get_the_due_time_in_the_zone() -> None:
    static = Schedule(name="s", topic="t", every="1m", payload={"a": 1})

    def sync_fn(due: dt.datetime) -> dict[str, Any]:
        return {"hour": due.hour, "tz": str(due.tzinfo)}

    async def async_fn(due: dt.datetime) -> dict[str, Any]:
        return {"minute": due.minute}

    berlin = Schedule(name="b", topic="t", every="1m", tz="Europe/Berlin", payload=sync_fn)
    asynchronous = Schedule(name="c", topic="t", every="1m", payload=async_fn)
    noon_utc = _ms(dt.datetime(2025, 6, 1, 12, 7, tzinfo=UTC))
    assert asyncio.run(static.build_payload(noon_utc)) == {"a": 1}
    assert asyncio.run(berlin.build_payload(noon_utc)) == {"hour": 14, "tz": "Europe/Berlin"}
    assert asyncio.run(asynchronous.build_payload(noon_utc)) == {"minute": 7}


@periodic(every="5m", topic="tasks.cleanup", catch_up="latest")
def cleanup(due: dt.datetime) -> dict[str, Any]:
    return {"before": due.isoformat()}


REPORT = Schedule(name="report", topic="tasks.report", cron="0 6 * * 1", tz="Europe/London")


def test_plugin_modules_and_config_entries_are_found_and_names_must_be_unique() -> None:
    found = load_schedules(
        ["tests.scheduling.test_schedule_unit"],
        [{"name": "from-config", "topic": "tasks.x", "every": "1h", "payload": {"k": "v"}}],
    )
    by_name = {s.name: s for s in found}
    assert set(by_name) == {"cleanup", "report", "from-config"}
    assert by_name["cleanup"].catch_up == "latest" and schedule_of(cleanup) is by_name["cleanup"]
    assert by_name["from-config"].payload == {"k": "v"}
    with pytest.raises(ConfigError, match="two schedules are named 'report'"):
        load_schedules(
            ["tests.scheduling.test_schedule_unit"],
            [{"name": "report", "topic": "tasks.y", "every": "1h"}],
        )
    with pytest.raises(ConfigError, match=r"schedules\[0\]: entry 'z': unknown field\(s\) evry"):
        load_schedules((), [{"name": "z", "topic": "t", "evry": "1h"}])


def test_schedules_come_from_toml_and_from_json_in_the_environment(tmp_path: Any) -> None:
    conf = tmp_path / "ktf.toml"
    conf.write_text(
        '[ktf]\nleader_session_timeout_ms = 7000\n[[ktf.schedules]]\nname = "a"\n'
        'topic = "t"\nevery = "10s"\npayload = { n = 1 }\n'
    )
    s = Settings.load(env={}, config_file=conf)
    assert s.leader_session_timeout_ms == 7000
    assert s.schedules == ({"name": "a", "topic": "t", "every": "10s", "payload": {"n": 1}},)
    env = Settings.load(env={"KTF_SCHEDULES": '[{"name": "b", "topic": "t", "every": "1s"}]'})
    assert env.schedules[0]["name"] == "b"
    with pytest.raises(ConfigError, match="schedules from environment variable KTF_SCHEDULES"):
        Settings.load(env={"KTF_SCHEDULES": "[{"})


def test_delay_tier_is_the_largest_not_exceeding_the_time_left() -> None:
    assert DELAY_TIERS[0] == "1s" and DELAY_TIERS[-1] == "1d"
    assert choose_tier(0) == 0 and choose_tier(999) == 0 and choose_tier(1_000) == 0
    assert DELAY_TIERS[choose_tier(4_999)] == "1s"
    assert DELAY_TIERS[choose_tier(5_000)] == "5s"
    assert DELAY_TIERS[choose_tier(7_200_000)] == "1h"
    assert DELAY_TIERS[choose_tier(6 * 86_400_000)] == "1d"
    assert delay_topics("tasks.a")[:2] == ["tasks.a.delay.1s", "tasks.a.delay.5s"]


def test_due_time_is_the_later_of_not_before_and_run_at() -> None:
    assert due_of({}) is None
    assert due_of({"ktf-not-before": "100"}) == 100
    assert due_of({"ktf-not-before": "100", "ktf-run-at": "250"}) == 250
    assert due_of({"ktf-not-before": "300", "ktf-run-at": "250"}) == 300  # a retry's hold
    assert due_of({"ktf-not-before": "soon"}) is None


def test_delay_and_run_at_are_validated() -> None:
    assert not_before_ms(10.0, now=1_000.0) == 1_010_000
    assert not_before_ms(dt.timedelta(minutes=1), now=0.0) == 60_000
    at = dt.datetime(2030, 1, 1, tzinfo=UTC)
    assert not_before_ms(run_at=at, now=at.timestamp() - 3600) == _ms(at)
    assert not_before_ms(run_at=dt.datetime(2000, 1, 1, tzinfo=UTC), now=1e9) == 1e12
    assert not_before_ms() is None
    with pytest.raises(ConfigError, match="not both"):
        not_before_ms(1.0, at)
    with pytest.raises(ConfigError, match=">= 0"):
        not_before_ms(-1.0)
    with pytest.raises(ConfigError, match="7-day maximum"):
        not_before_ms(MAX_DELAY + 1)
