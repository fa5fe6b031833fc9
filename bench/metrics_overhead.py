"""Micro-benchmark: cost per call of the instrumentation on the runtime's hot path.

    .venv/bin/python bench/metrics_overhead.py [--calls 1000000]

Prints ns/call for WorkerMetrics.task_finished, task_started, in_flight, set_buffered and
HealthState.beat, next to an empty method call as the floor.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from framework.observability.health import HealthState
from framework.observability.metrics import WorkerMetrics


class _Empty:
    def call(self) -> None:
        pass


def _time(fn: Callable[[], None], calls: int) -> float:
    start = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - start) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=1_000_000)
    n = parser.parse_args().calls
    m = WorkerMetrics()
    h = HealthState()
    e = _Empty()
    rng = range(n)

    def empty() -> None:
        call = e.call
        for _ in rng:
            call()

    def task_finished() -> None:
        tf = m.task_finished
        for _ in rng:
            tf("resize", "tasks.resize", "ok", 0.0123, 0.5)

    def task_finished_no_e2e() -> None:
        tf = m.task_finished
        for _ in rng:
            tf("resize", "tasks.resize", "ok", 0.0123, None)

    def task_started() -> None:
        ts = m.task_started
        stamp = int(time.time() * 1000)
        for _ in rng:
            ts("resize", stamp)

    def in_flight() -> None:
        f = m.in_flight
        for _ in rng:
            f("resize", 1)

    def set_buffered() -> None:
        f = m.set_buffered
        for _ in rng:
            f(100)

    def beat() -> None:
        b = h.beat
        for _ in rng:
            b()

    print(f"{n:,} calls each (ns/call, loop overhead included)")
    for name, fn in (
        ("empty method (floor)", empty),
        ("WorkerMetrics.task_finished", task_finished),
        ("WorkerMetrics.task_finished(e2e=None)", task_finished_no_e2e),
        ("WorkerMetrics.task_started", task_started),
        ("WorkerMetrics.in_flight", in_flight),
        ("WorkerMetrics.set_buffered", set_buffered),
        ("HealthState.beat", beat),
    ):
        fn()  # warm up: creates labelled children, fills caches
        print(f"  {name:<40} {_time(fn, n):8.1f}")
    assert m.registry.get_sample_value(
        "ktf_tasks_total", {"handler": "resize", "topic": "tasks.resize", "outcome": "ok"}
    )


if __name__ == "__main__":
    main()
