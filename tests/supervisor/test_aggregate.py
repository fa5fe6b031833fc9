"""Merging the children's /metrics into the pod's: sums, maxima, earliest creation, carried totals."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from framework.observability.metrics import WorkerMetrics
from framework.supervisor.aggregate import Carried, merge_expositions


def _child(ok: int, durations: list[float], in_flight: int, lag: int) -> str:
    m = WorkerMetrics()
    for d in durations[:ok]:
        m.task_finished("h", "t", "ok", d, None)
    m.set_in_flight("h", in_flight)
    m.update_from_stats(
        '{"topics": {"t": {"partitions": {"0": {"consumer_lag": %d}}}}}' % lag  # noqa: UP031
    )
    m.retry("h", "30s")
    return generate_latest(m.registry).decode()


class _Merged(Collector):
    def __init__(self, metrics: list[Metric]) -> None:
        self._metrics = metrics

    def collect(self):  # type: ignore[no-untyped-def]
        yield from self._metrics


def _value(metrics: list[Metric], sample: str, **labels: str) -> float:
    for fam in metrics:
        for s in fam.samples:
            if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    raise AssertionError(f"no sample {sample}{labels}")


def test_counters_and_histograms_are_summed_across_children() -> None:
    a = _child(3, [0.001, 0.02, 0.3], in_flight=4, lag=10)
    b = _child(2, [0.02, 7.0], in_flight=5, lag=3)
    merged = merge_expositions([a, b])
    assert _value(merged, "ktf_tasks_total", outcome="ok") == 5
    assert _value(merged, "ktf_retries_total", tier="30s") == 2
    assert _value(merged, "ktf_task_duration_seconds_count") == 5
    assert _value(merged, "ktf_task_duration_seconds_sum") == pytest.approx(7.341)
    assert _value(merged, "ktf_task_duration_seconds_bucket", le="0.025") == 3
    assert _value(merged, "ktf_task_duration_seconds_bucket", le="+Inf") == 5


def test_additive_gauges_sum_and_lag_takes_the_worst_child() -> None:
    merged = merge_expositions(
        [_child(1, [0.1], in_flight=4, lag=10), _child(1, [0.1], in_flight=5, lag=3)]
    )
    assert _value(merged, "ktf_tasks_in_flight", handler="h") == 9
    # Summing two children's view of one partition's lag would invent a backlog.
    assert _value(merged, "ktf_consumer_lag", topic="t", partition="0") == 10


def test_created_timestamps_take_the_earliest() -> None:
    texts = []
    for _ in range(2):
        r = CollectorRegistry()
        Counter("ktf_x", "x", registry=r).inc()
        texts.append(generate_latest(r).decode())
    first = float(
        next(line for line in texts[0].splitlines() if line.startswith("ktf_x_created")).split()[1]
    )
    merged = merge_expositions(reversed(texts))
    assert _value(merged, "ktf_x_created") == first
    assert _value(merged, "ktf_x_total") == 2


def test_a_dead_childs_counters_are_carried_but_not_its_gauges() -> None:
    carried = Carried()
    carried.add(_child(3, [0.1, 0.1, 0.1], in_flight=7, lag=50))
    restarted = _child(1, [0.1], in_flight=1, lag=2)
    merged = merge_expositions([restarted], carried)
    assert _value(merged, "ktf_tasks_total", outcome="ok") == 4
    assert _value(merged, "ktf_task_duration_seconds_count") == 4
    assert _value(merged, "ktf_tasks_in_flight", handler="h") == 1
    assert _value(merged, "ktf_consumer_lag", topic="t", partition="0") == 2


def test_the_merge_renders_as_a_valid_exposition_again() -> None:
    r = CollectorRegistry()
    Gauge("ktf_g", "g", registry=r).set(2)
    merged = merge_expositions([_child(2, [0.1, 0.2], 1, 1), generate_latest(r).decode()])
    out = CollectorRegistry()
    out.register(_Merged(merged))
    text = generate_latest(out).decode()
    assert "# TYPE ktf_tasks_total counter" in text
    assert 'ktf_tasks_total{handler="h",outcome="ok",topic="t"} 2.0' in text
    assert "# TYPE ktf_task_duration_seconds histogram" in text
    assert "ktf_g 2.0" in text
