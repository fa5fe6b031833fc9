"""WorkerMetrics: every runtime call lands in the right ktf_* sample."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest

from framework.observability.metrics import OUTCOMES, WorkerMetrics

StatsJson = Callable[[dict[str, dict[int, int]]], str]


@pytest.fixture
def m() -> WorkerMetrics:
    return WorkerMetrics()


def sample(m: WorkerMetrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def test_each_metrics_object_has_its_own_registry() -> None:
    a, b = WorkerMetrics(), WorkerMetrics()
    a.commit_failure()
    assert a.registry is not b.registry
    assert sample(a, "ktf_commit_failures_total") == 1
    assert sample(b, "ktf_commit_failures_total") == 0


def test_task_finished_counts_by_outcome_and_observes_duration(m: WorkerMetrics) -> None:
    for _ in range(3):
        m.task_finished("resize", "tasks.resize", "ok", 0.02, 0.5)
    m.task_finished("resize", "tasks.resize", "error", 0.2, None)
    m.task_finished("resize", "tasks.resize", "dead_lettered", 3.0, 10.0)

    def tasks(outcome: str) -> float | None:
        return sample(m, "ktf_tasks_total", handler="resize", topic="tasks.resize", outcome=outcome)

    assert tasks("ok") == 3
    assert tasks("error") == 1
    assert tasks("dead_lettered") == 1
    assert tasks("retried") is None
    assert sample(m, "ktf_task_duration_seconds_count", handler="resize") == 5
    assert sample(m, "ktf_task_duration_seconds_sum", handler="resize") == pytest.approx(3.26)
    # 0.02 s falls in the 0.025 bucket, 0.2 in 0.25, 3.0 only from 5.0 up.
    assert sample(m, "ktf_task_duration_seconds_bucket", handler="resize", le="0.025") == 3
    assert sample(m, "ktf_task_duration_seconds_bucket", handler="resize", le="0.25") == 4
    assert sample(m, "ktf_task_duration_seconds_bucket", handler="resize", le="5.0") == 5
    # e2e latency is observed only when known.
    assert sample(m, "ktf_task_e2e_latency_seconds_count", handler="resize") == 4
    assert sample(m, "ktf_task_e2e_latency_seconds_sum", handler="resize") == pytest.approx(11.5)


def test_task_started_observes_the_wait_since_the_record_timestamp(m: WorkerMetrics) -> None:
    now_ms = int(time.time() * 1000)
    m.task_started("resize", now_ms - 3)  # ~3 ms: the 0.005 bucket
    m.task_started("resize", now_ms - 40_000)  # 40 s: the 60.0 bucket
    m.task_started("resize", now_ms + 60_000)  # producer clock ahead: counts as zero
    m.task_started("resize", -1)  # no timestamp: not observed
    assert sample(m, "ktf_task_queue_seconds_count", handler="resize") == 3
    assert sample(m, "ktf_task_queue_seconds_bucket", handler="resize", le="0.001") == 1
    assert sample(m, "ktf_task_queue_seconds_bucket", handler="resize", le="0.025") == 2
    assert sample(m, "ktf_task_queue_seconds_bucket", handler="resize", le="30.0") == 2
    assert sample(m, "ktf_task_queue_seconds_bucket", handler="resize", le="60.0") == 3
    assert sample(m, "ktf_task_queue_seconds_sum", handler="resize") == pytest.approx(40.0, abs=1.0)


def test_all_documented_outcomes_are_accepted(m: WorkerMetrics) -> None:
    for outcome in OUTCOMES:
        m.task_finished("h", "t", outcome, 0.001, None)
    for outcome in OUTCOMES:
        assert sample(m, "ktf_tasks_total", handler="h", topic="t", outcome=outcome) == 1


def test_handlers_are_separate_series(m: WorkerMetrics) -> None:
    m.task_finished("a", "t.a", "ok", 0.1, None)
    m.task_finished("b", "t.b", "ok", 0.1, None)
    m.task_finished("b", "t.b", "ok", 0.1, None)
    assert sample(m, "ktf_tasks_total", handler="a", topic="t.a", outcome="ok") == 1
    assert sample(m, "ktf_tasks_total", handler="b", topic="t.b", outcome="ok") == 2
    assert sample(m, "ktf_task_duration_seconds_count", handler="a") == 1


def test_in_flight_goes_up_and_down(m: WorkerMetrics) -> None:
    m.in_flight("h", 1)
    m.in_flight("h", 1)
    m.in_flight("h", 1)
    m.in_flight("h", -1)
    assert sample(m, "ktf_tasks_in_flight", handler="h") == 2


def test_gauges_buffered_and_paused_are_set_not_added(m: WorkerMetrics) -> None:
    m.set_buffered(120)
    m.set_buffered(7)
    m.set_paused(3)
    assert sample(m, "ktf_buffered_records") == 7
    assert sample(m, "ktf_paused_partitions") == 3


def test_retries_dead_letters_rebalances_commit_failures(m: WorkerMetrics) -> None:
    m.retry("h", "30s")
    m.retry("h", "30s")
    m.retry("h", "5m")
    m.dead_letter("h", "ValueError")
    m.rebalance("assign")
    m.rebalance("assign")
    m.rebalance("lost")
    m.commit_failure()
    assert sample(m, "ktf_retries_total", handler="h", tier="30s") == 2
    assert sample(m, "ktf_retries_total", handler="h", tier="5m") == 1
    assert sample(m, "ktf_dead_letters_total", handler="h", error_type="ValueError") == 1
    assert sample(m, "ktf_rebalances_total", event="assign") == 2
    assert sample(m, "ktf_rebalances_total", event="lost") == 1
    assert sample(m, "ktf_rebalances_total", event="revoke") == 0
    assert sample(m, "ktf_commit_failures_total") == 1


def test_update_from_stats_sets_lag_per_assigned_partition(
    m: WorkerMetrics, stats_json: StatsJson
) -> None:
    m.update_from_stats(stats_json({"tasks.a": {0: 5, 1: 0, 2: -1}, "tasks.b": {0: 12}}))
    assert sample(m, "ktf_consumer_lag", topic="tasks.a", partition="0") == 5
    assert sample(m, "ktf_consumer_lag", topic="tasks.a", partition="1") == 0
    assert sample(m, "ktf_consumer_lag", topic="tasks.b", partition="0") == 12
    # lag -1 (not assigned / unknown) and the internal partition -1 are skipped
    assert sample(m, "ktf_consumer_lag", topic="tasks.a", partition="2") is None
    assert sample(m, "ktf_consumer_lag", topic="tasks.a", partition="-1") is None


def test_update_from_stats_drops_partitions_no_longer_reported(
    m: WorkerMetrics, stats_json: StatsJson
) -> None:
    m.update_from_stats(stats_json({"tasks.a": {0: 5, 1: 9}}))
    m.update_from_stats(stats_json({"tasks.a": {0: 2}}))
    assert sample(m, "ktf_consumer_lag", topic="tasks.a", partition="0") == 2
    assert sample(m, "ktf_consumer_lag", topic="tasks.a", partition="1") is None


@pytest.mark.parametrize("payload", ["not json", "[1, 2]", json.dumps({"topics": {"t": 3}})])
def test_update_from_stats_survives_malformed_payloads(
    m: WorkerMetrics, stats_json: StatsJson, payload: str
) -> None:
    m.update_from_stats(stats_json({"tasks.a": {0: 4}}))
    m.update_from_stats(payload)
    assert sample(m, "ktf_stats_errors_total") == 1
    # The last good value stays.
    assert sample(m, "ktf_consumer_lag", topic="tasks.a", partition="0") == 4


def test_update_from_stats_without_topics_clears_nothing_it_never_set(
    m: WorkerMetrics, stats_json: StatsJson
) -> None:
    m.update_from_stats(json.dumps({"name": "rdkafka#consumer-1", "type": "consumer"}))
    assert sample(m, "ktf_stats_errors_total") == 0
