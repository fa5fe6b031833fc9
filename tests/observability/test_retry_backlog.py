"""Retry-tier backlog is reported apart from runnable lag (metric and `ktf lag`)."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from framework.cli import main
from framework.commands.ops import lag_totals
from framework.kafka.admin_ops import LagReport, LagRow
from framework.observability.metrics import WorkerMetrics
from framework.routing.tiers import (
    is_retry_tier,
    is_waiting_tier,
    split_retry_tier,
    split_waiting_tier,
)
from tests.observability.test_ops_commands import commit, create_topic, produce

StatsJson = Callable[[dict[str, dict[int, int]]], str]


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("tasks.resize.retry.5m", ("tasks.resize", "5m")),
        ("tasks.resize.retry.500ms", ("tasks.resize", "500ms")),
        ("a.retry.30s", ("a", "30s")),
        ("tasks.resize", None),
        ("tasks.resize.retry", None),
        ("tasks.resize.retry.soon", None),
        ("tasks.resize.retry.5m.dlq", None),
        ("tasks.resize.dlq", None),
    ],
)
def test_retry_tiers_are_told_apart_by_name(topic: str, expected: tuple[str, str] | None) -> None:
    assert split_retry_tier(topic) == expected
    assert is_retry_tier(topic) is (expected is not None)


def test_stats_put_tier_partitions_in_retry_backlog_not_consumer_lag(
    stats_json: StatsJson,
) -> None:
    m = WorkerMetrics()
    m.update_from_stats(
        stats_json(
            {"tasks.a": {0: 3, 1: 0}, "tasks.a.retry.5m": {0: 50}, "tasks.a.retry.30s": {0: 7}}
        )
    )

    def value(name: str, topic: str, partition: str) -> float | None:
        return m.registry.get_sample_value(name, {"topic": topic, "partition": partition})

    assert value("ktf_consumer_lag", "tasks.a", "0") == 3
    assert value("ktf_consumer_lag", "tasks.a.retry.5m", "0") is None
    assert value("ktf_retry_backlog", "tasks.a.retry.5m", "0") == 50
    assert value("ktf_retry_backlog", "tasks.a.retry.30s", "0") == 7
    assert value("ktf_retry_backlog", "tasks.a", "0") is None
    # A tier partition that is revoked disappears from the backlog too.
    m.update_from_stats(stats_json({"tasks.a": {0: 1}}))
    assert value("ktf_retry_backlog", "tasks.a.retry.5m", "0") is None
    assert value("ktf_consumer_lag", "tasks.a", "0") == 1


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("tasks.resize.delay.1d", ("tasks.resize", "delay", "1d")),
        ("tasks.resize.delay.30s", ("tasks.resize", "delay", "30s")),
        ("tasks.resize.retry.5m", ("tasks.resize", "retry", "5m")),
        ("tasks.resize.delay", None),
        ("tasks.resize.delay.1d.dlq", None),
        ("tasks.resize", None),
    ],
)
def test_delay_tiers_are_waiting_tiers_but_not_retry_tiers(
    topic: str, expected: tuple[str, str, str] | None
) -> None:
    assert split_waiting_tier(topic) == expected
    assert is_waiting_tier(topic) is (expected is not None)
    assert is_retry_tier(topic) is (expected is not None and expected[1] == "retry")


def test_delay_backlog_is_not_runnable_lag() -> None:
    rows = [
        LagRow("tasks.a", 0, 0, 0, 4, 4),
        LagRow("tasks.a.retry.30s", 0, 0, 0, 5, 5),
        LagRow("tasks.a.delay.1h", 0, 0, 0, 6, 6),
        LagRow("tasks.a.delay.1s", 1, 0, 0, 1, 1),
    ]
    totals = lag_totals(LagReport("g", rows))
    assert (totals.runnable, totals.retry_backlog, totals.delay_backlog) == (4, 5, 7)
    assert totals.by_tier == {"30s": 5}
    assert totals.delay_by_tier == {"1h": 6, "1s": 1}


def test_stats_put_delay_tier_partitions_in_the_backlog(stats_json: StatsJson) -> None:
    m = WorkerMetrics()
    m.update_from_stats(stats_json({"tasks.a": {0: 2}, "tasks.a.delay.1h": {0: 9}}))
    labels = {"topic": "tasks.a.delay.1h", "partition": "0"}
    assert m.registry.get_sample_value("ktf_retry_backlog", labels) == 9
    assert m.registry.get_sample_value("ktf_consumer_lag", labels) is None


@pytest.mark.broker
def test_ktf_lag_excludes_retry_backlog_from_runnable_lag(
    kafka_bootstrap: str, unique: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The operator's case: 50 tasks wait in a 5m tier, 3 runnable tasks on the topic.
    topic, group = f"{unique}.tasks", f"{unique}-group"
    tier = f"{topic}.retry.5m"
    create_topic(kafka_bootstrap, topic, 1)
    create_topic(kafka_bootstrap, tier, 2)
    produce(kafka_bootstrap, topic, {0: 5})
    produce(kafka_bootstrap, tier, {0: 30, 1: 20})
    commit(kafka_bootstrap, group, {(topic, 0): 2, (tier, 0): 0, (tier, 1): 0})

    capsys.readouterr()
    code = main(["lag", "--group", group, "--json", "--bootstrap-servers", kafka_bootstrap])
    out, err = capsys.readouterr()
    assert code == 0, err
    data = json.loads(out)
    assert data["runnable_lag"] == 3
    assert data["total_lag"] == 3
    assert data["retry_backlog"] == 50
    assert data["retry_backlog_by_tier"] == {"5m": 50}
    kinds = {(p["topic"], p["partition"]): (p["kind"], p["tier"]) for p in data["partitions"]}
    assert kinds == {
        (topic, 0): ("task", None),
        (tier, 0): ("retry", "5m"),
        (tier, 1): ("retry", "5m"),
    }

    code = main(["lag", "--group", group, "--bootstrap-servers", kafka_bootstrap])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"TOTAL lag of group '{group}': 3 (runnable: task topics)" in out
    assert f"RETRY backlog of group '{group}': 50 (5m: 50;" in out
    assert "retry 5m" in out
