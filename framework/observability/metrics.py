"""Prometheus metrics of a worker (names are part of the contract: prefix ``ktf_``).

The runtime calls :class:`WorkerMetrics` on its hot path (once or twice per
task). prometheus-client's own Counter/Histogram take a lock per child update
(five or more per finished task, ~2.8 us measured), so the hot-path metrics
(tasks, durations, in-flight, buffered, paused) are plain Python numbers kept
in dicts keyed by the label tuple, updated under one lock per call, and turned
into metric families only when ``/metrics`` is scraped (:class:`_HotCollector`).
Rare events (retries, dead letters, rebalances, commit failures, lag) use
prometheus-client directly. Figures: bench/metrics_overhead.py.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from framework.routing.tiers import is_waiting_tier

__all__ = ["DURATION_BUCKETS", "E2E_BUCKETS", "OUTCOMES", "QUEUE_BUCKETS", "WorkerMetrics"]

#: Outcomes a finished task can have (the ``outcome`` label of ``ktf_tasks_total``).
OUTCOMES = (
    "ok",
    "error",
    "retried",
    "dead_lettered",
    "expired",
    "cancelled",
    "timeout",
    "rejected",
)

#: Handler run time: from sub-millisecond work to the one-minute timeouts handlers use.
DURATION_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
)
#: Record timestamp to completion: includes queueing and retry delays, so it reaches hours.
E2E_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
    3600.0,
)

#: Record timestamp to handler start: a millisecond when idle, more under backlog, and
#: the whole delay for retry-tier records (their timestamp is when they were written).
QUEUE_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
    3600.0,
)

_REBALANCE_EVENTS = ("assign", "revoke", "lost")


class _Hist:
    """Non-cumulative bucket counts plus sum; made cumulative at scrape time."""

    __slots__ = ("counts", "sum")

    def __init__(self, n_buckets: int) -> None:
        self.counts = [0] * (n_buckets + 1)  # last slot: above every bound (+Inf only)
        self.sum = 0.0


def _histogram_family(
    name: str, doc: str, bounds: tuple[float, ...], data: dict[str, _Hist]
) -> HistogramMetricFamily:
    fam = HistogramMetricFamily(name, doc, labels=("handler",))
    # repr() matches Prometheus' Go formatting for bounds below 1e6 ("0.025", "5.0").
    les = [repr(float(b)) for b in bounds] + ["+Inf"]
    for handler, h in sorted(data.items()):
        running = 0
        buckets: list[tuple[str, float]] = []
        for le, c in zip(les, list(h.counts), strict=True):
            running += c
            buckets.append((le, float(running)))
        fam.add_metric((handler,), buckets, h.sum)
    return fam


class _HotCollector(Collector):
    """Exposes the hot-path numbers of one :class:`WorkerMetrics` at scrape time."""

    def __init__(self, owner: WorkerMetrics) -> None:
        self._m = owner

    def collect(self) -> Iterator[Metric]:
        m = self._m
        with m._lock:
            # Copy under the lock: no cell is added while the dicts are read.
            tasks = {k: v[0] for k, v in m._tasks.items()}
            dur = {k: _copy_hist(v) for k, v in m._dur.items()}
            e2e = {k: _copy_hist(v) for k, v in m._e2e.items()}
            queue = {k: _copy_hist(v) for k, v in m._queue.items()}
            in_flight = {k: v[0] for k, v in m._in_flight.items()}
            buffered, paused = m._buffered, m._paused
        fam = CounterMetricFamily(
            "ktf_tasks",
            "Tasks finished, by handler, topic and outcome.",
            labels=("handler", "topic", "outcome"),
        )
        for key, value in sorted(tasks.items()):
            fam.add_metric(key, float(value))
        yield fam
        yield _histogram_family(
            "ktf_task_duration_seconds",
            "Time the handler ran for one task (one attempt).",
            DURATION_BUCKETS,
            dur,
        )
        yield _histogram_family(
            "ktf_task_e2e_latency_seconds",
            "Time from the task record's timestamp to the end of its processing.",
            E2E_BUCKETS,
            e2e,
        )
        yield _histogram_family(
            "ktf_task_queue_seconds",
            "Time from the task record's timestamp to the start of its handler.",
            QUEUE_BUCKETS,
            queue,
        )
        g = GaugeMetricFamily(
            "ktf_tasks_in_flight",
            "Tasks currently running in the worker pool.",
            labels=("handler",),
        )
        for handler, value in sorted(in_flight.items()):
            g.add_metric((handler,), float(value))
        yield g
        yield GaugeMetricFamily(
            "ktf_buffered_records",
            "Records fetched and waiting in the per-partition buffers.",
            value=float(buffered),
        )
        yield GaugeMetricFamily(
            "ktf_paused_partitions",
            "Assigned partitions currently paused by flow control.",
            value=float(paused),
        )


def _copy_hist(h: _Hist) -> _Hist:
    c = _Hist(len(h.counts) - 1)
    c.counts = list(h.counts)
    c.sum = h.sum
    return c


class WorkerMetrics:
    """All metrics of one worker process, registered in one registry.

    ``registry=None`` creates a private :class:`CollectorRegistry` (so tests and
    several workers in one process do not collide); pass
    ``prometheus_client.REGISTRY`` to also export process metrics. Every method
    is thread-safe.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self._lock = threading.Lock()
        # Label tuple -> one-element list (a mutable cell), or a histogram.
        self._tasks: dict[tuple[str, str, str], list[int]] = {}
        self._dur: dict[str, _Hist] = {}
        self._e2e: dict[str, _Hist] = {}
        self._queue: dict[str, _Hist] = {}
        self._in_flight: dict[str, list[int]] = {}
        self._buffered = 0
        self._paused = 0
        r.register(_HotCollector(self))

        self.retries_total = Counter(
            "ktf_retries_total",
            "Tasks sent to a retry tier, by handler and tier.",
            ("handler", "tier"),
            registry=r,
        )
        self.dead_letters_total = Counter(
            "ktf_dead_letters_total",
            "Tasks sent to the dead-letter topic, by handler and error type.",
            ("handler", "error_type"),
            registry=r,
        )
        self.rebalances_total = Counter(
            "ktf_rebalances_total",
            "Rebalance callbacks, by event (assign, revoke, lost).",
            ("event",),
            registry=r,
        )
        self.commit_failures_total = Counter(
            "ktf_commit_failures_total",
            "Offset commits that failed.",
            registry=r,
        )
        self.consumer_lag = Gauge(
            "ktf_consumer_lag",
            "Runnable lag by partition of the task topics, as librdkafka reports it "
            "(high watermark - position); retry and delay tiers are in ktf_retry_backlog.",
            ("topic", "partition"),
            registry=r,
        )
        self.retry_backlog = Gauge(
            "ktf_retry_backlog",
            "Records waiting in retry-tier and delay-tier topics by partition (high watermark - "
            "position): they run at their not-before time, so they are not lag more pods could "
            "absorb.",
            ("topic", "partition"),
            registry=r,
        )
        self.assigned_partitions = Gauge(
            "ktf_assigned_partitions",
            "Partitions (task topics and retry tiers) this member owns right now.",
            registry=r,
        )
        self.stats_errors_total = Counter(
            "ktf_stats_errors_total",
            "librdkafka statistics payloads that could not be parsed.",
            registry=r,
        )
        self._retries: dict[tuple[str, str], Any] = {}
        self._dead: dict[tuple[str, str], Any] = {}
        self._rebalances: dict[str, Any] = {}
        self._lag_children: dict[tuple[str, str], Any] = {}
        self._backlog_children: dict[tuple[str, str], Any] = {}
        for event in _REBALANCE_EVENTS:
            # Pre-create so dashboards show 0 instead of "no data".
            self._rebalances[event] = self.rebalances_total.labels(event)

    # -- hot path -------------------------------------------------------------

    def task_finished(
        self,
        handler: str,
        topic: str,
        outcome: str,
        duration_s: float,
        e2e_s: float | None,
    ) -> None:
        """Count one finished task and observe its duration (and end-to-end latency).

        Called from the event loop only. Cells are created under the lock (a scrape
        iterates the dicts); updating an existing cell takes no lock, so a scrape may
        see a task counted an instant before its duration is, never a torn value.
        """
        key = (handler, topic, outcome)
        cell = self._tasks.get(key)
        h = self._dur.get(handler)
        e = self._e2e.get(handler)
        if cell is None or h is None or e is None:
            with self._lock:
                cell = self._tasks.setdefault(key, [0])
                h = self._dur.setdefault(handler, _Hist(len(DURATION_BUCKETS)))
                e = self._e2e.setdefault(handler, _Hist(len(E2E_BUCKETS)))
        cell[0] += 1
        h.counts[bisect_left(DURATION_BUCKETS, duration_s)] += 1
        h.sum += duration_s
        if e2e_s is not None:
            e.counts[bisect_left(E2E_BUCKETS, e2e_s)] += 1
            e.sum += e2e_s

    def task_started(self, handler: str, timestamp_ms: int) -> None:
        """Observe the time from the record's timestamp to its handler starting now.

        Called from the event loop when the handler is about to run. A record
        without a timestamp (``<= 0``) is not observed; a timestamp ahead of this
        machine's clock (skew) counts as zero.
        """
        if timestamp_ms <= 0:
            return
        waited = time.time() - timestamp_ms / 1000.0
        if waited < 0.0:
            waited = 0.0
        h = self._queue.get(handler)
        if h is None:
            with self._lock:
                h = self._queue.setdefault(handler, _Hist(len(QUEUE_BUCKETS)))
        h.counts[bisect_left(QUEUE_BUCKETS, waited)] += 1
        h.sum += waited

    def in_flight(self, handler: str, delta: int) -> None:
        """Add ``delta`` (+1 on start, -1 on finish) to the handler's in-flight gauge."""
        with self._lock:
            cell = self._in_flight.get(handler)
            if cell is None:
                cell = self._in_flight[handler] = [0]
            cell[0] += delta

    def set_in_flight(self, handler: str, n: int) -> None:
        """Set the handler's in-flight gauge (the worker samples its pools each second)."""
        cell = self._in_flight.get(handler)
        if cell is None:
            with self._lock:
                cell = self._in_flight.setdefault(handler, [0])
        cell[0] = n

    def set_buffered(self, n: int) -> None:
        """Set the number of records waiting in the partition buffers."""
        self._buffered = n  # a single store: atomic, no lock needed

    def set_paused(self, n: int) -> None:
        """Set the number of partitions paused by flow control."""
        self._paused = n

    # -- less frequent events ---------------------------------------------------

    def retry(self, handler: str, tier: str) -> None:
        """Count a task sent to retry tier ``tier`` (e.g. ``30s``)."""
        key = (handler, tier)
        child = self._retries.get(key)
        if child is None:
            child = self._retries[key] = self.retries_total.labels(handler, tier)
        child.inc()

    def dead_letter(self, handler: str, error_type: str) -> None:
        """Count a task sent to the dead-letter topic."""
        key = (handler, error_type)
        child = self._dead.get(key)
        if child is None:
            child = self._dead[key] = self.dead_letters_total.labels(handler, error_type)
        child.inc()

    def rebalance(self, event: str) -> None:
        """Count a rebalance callback: ``assign``, ``revoke`` or ``lost``."""
        child = self._rebalances.get(event)
        if child is None:
            child = self._rebalances[event] = self.rebalances_total.labels(event)
        child.inc()

    def set_assigned_partitions(self, n: int) -> None:
        """Set the number of partitions this member owns (sampled by the worker)."""
        self.assigned_partitions.set(n)

    def commit_failure(self) -> None:
        """Count a failed offset commit."""
        self.commit_failures_total.inc()

    def update_from_stats(self, stats_json: str) -> None:
        """Set ``ktf_consumer_lag`` and ``ktf_retry_backlog`` from librdkafka statistics.

        Meant to be called from ``stats_cb`` (``statistics.interval.ms``). Reads
        ``topics.<t>.partitions.<p>.consumer_lag``; skips the internal partition
        ``-1`` and partitions whose lag is unknown (``-1``, e.g. not assigned).
        Partitions of retry-tier topics (``<topic>.retry.<delay>``) go to
        ``ktf_retry_backlog``, every other one to ``ktf_consumer_lag``, so a sum of
        the latter is runnable work only. Partitions that disappear from the
        statistics (revoked) are removed, so a stale lag does not linger after a
        rebalance. A malformed document is counted in ``ktf_stats_errors_total``
        and otherwise ignored: statistics must never break the consumer.
        """
        try:
            stats = json.loads(stats_json)
            topics = stats.get("topics") or {}
            lag_seen: dict[tuple[str, str], float] = {}
            backlog_seen: dict[tuple[str, str], float] = {}
            for topic, tstats in topics.items():
                seen = backlog_seen if is_waiting_tier(str(topic)) else lag_seen
                for pid, pstats in (tstats.get("partitions") or {}).items():
                    if pid == "-1":
                        continue
                    lag = pstats.get("consumer_lag", -1)
                    if lag is None or lag < 0:
                        continue
                    seen[(str(topic), str(pid))] = float(lag)
        except (ValueError, AttributeError, TypeError):
            self.stats_errors_total.inc()
            return
        _set_children(self.consumer_lag, self._lag_children, lag_seen)
        _set_children(self.retry_backlog, self._backlog_children, backlog_seen)


def _set_children(
    gauge: Gauge, children: dict[tuple[str, str], Any], seen: dict[Any, float]
) -> None:
    for key, lag in seen.items():
        child = children.get(key)
        if child is None:
            child = children[key] = gauge.labels(*key)
        child.set(lag)
    for key in [k for k in children if k not in seen]:
        del children[key]
        with contextlib.suppress(KeyError):  # already removed
            gauge.remove(*key)
