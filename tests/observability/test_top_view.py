"""`ktf top` arithmetic and rendering, without a broker."""

from __future__ import annotations

from prometheus_client.exposition import generate_latest

from framework.commands.ops import Snapshot, handler_rows, parse_metrics, render_screen
from framework.observability.metrics import WorkerMetrics


def snapshot(at: float, *workers: WorkerMetrics) -> Snapshot:
    snap = Snapshot(at=at)
    for w in workers:
        parse_metrics(generate_latest(w.registry).decode(), snap)
        snap.up += 1
    return snap


def test_rates_are_summed_over_workers_and_errors_exclude_ok() -> None:
    a, b = WorkerMetrics(), WorkerMetrics()
    first = snapshot(100.0, a, b)
    for _ in range(30):
        a.task_finished("resize", "t", "ok", 0.01, None)
    for _ in range(10):
        b.task_finished("resize", "t", "error", 0.01, None)
    b.task_finished("resize", "t", "cancelled", 0.01, None)
    a.in_flight("resize", 4)
    b.set_buffered(9)
    second = snapshot(102.0, a, b)
    (row,) = handler_rows(first, second)
    assert row.handler == "resize"
    assert row.rate == 41 / 2
    assert row.error_rate == 10 / 2
    assert row.in_flight == 4
    assert second.buffered == 9
    screen = render_screen([row], second, "7", "group g")
    assert "resize" in screen and "20.5/s" in screen and "lag 7" in screen


def test_first_refresh_has_no_rate_and_restarts_never_go_negative() -> None:
    w = WorkerMetrics()
    w.task_finished("h", "t", "ok", 0.01, None)
    (row,) = handler_rows(None, snapshot(1.0, w))
    assert row.rate is None
    before = snapshot(1.0, w)
    after = snapshot(2.0, WorkerMetrics())  # the worker restarted: counters reset
    after.tasks[("h", "ok")] = 0.0
    (row,) = handler_rows(before, after)
    assert row.rate == 0.0
