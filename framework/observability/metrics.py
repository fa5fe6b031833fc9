"""Prometheus metrics of a worker (names are part of the contract: prefix ``ktf_``).

The runtime calls :class:`WorkerMetrics` on its hot path, so every method looks
up an already-created labelled child in a dict keyed by the label tuple: after
the first call for a label combination there is no ``labels()`` call, no string
formatting and no allocation beyond the tuple. See bench/metrics_overhead.py.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["DURATION_BUCKETS", "E2E_BUCKETS", "OUTCOMES", "WorkerMetrics"]

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

_REBALANCE_EVENTS = ("assign", "revoke", "lost")


class WorkerMetrics:
    """All metrics of one worker process, registered in one registry.

    ``registry=None`` creates a private :class:`CollectorRegistry` (so tests and
    several workers in one process do not collide); pass
    ``prometheus_client.REGISTRY`` to also export process metrics.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.tasks_total = Counter(
            "ktf_tasks_total",
            "Tasks finished, by handler, topic and outcome.",
            ("handler", "topic", "outcome"),
            registry=r,
        )
        self.task_duration = Histogram(
            "ktf_task_duration_seconds",
            "Time the handler ran for one task (one attempt).",
            ("handler",),
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.task_e2e_latency = Histogram(
            "ktf_task_e2e_latency_seconds",
            "Time from the task record's timestamp to the end of its processing.",
            ("handler",),
            buckets=E2E_BUCKETS,
            registry=r,
        )
        self.tasks_in_flight = Gauge(
            "ktf_tasks_in_flight",
            "Tasks currently running in the worker pool.",
            ("handler",),
            registry=r,
        )
        self.buffered_records = Gauge(
            "ktf_buffered_records",
            "Records fetched and waiting in the per-partition buffers.",
            registry=r,
        )
        self.paused_partitions = Gauge(
            "ktf_paused_partitions",
            "Assigned partitions currently paused by flow control.",
            registry=r,
        )
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
            "Consumer lag by partition as librdkafka reports it (high watermark - position).",
            ("topic", "partition"),
            registry=r,
        )
        self.stats_errors_total = Counter(
            "ktf_stats_errors_total",
            "librdkafka statistics payloads that could not be parsed.",
            registry=r,
        )
        # Label tuple -> child. Reads are plain dict lookups; a miss creates the child
        # once. Races on a miss are harmless: labels() returns the same child.
        self._tasks: dict[tuple[str, str, str], Any] = {}
        self._duration: dict[str, Any] = {}
        self._e2e: dict[str, Any] = {}
        self._in_flight: dict[str, Any] = {}
        self._retries: dict[tuple[str, str], Any] = {}
        self._dead: dict[tuple[str, str], Any] = {}
        self._rebalances: dict[str, Any] = {}
        self._lag_children: dict[tuple[str, str], Any] = {}
        for event in _REBALANCE_EVENTS:
            # Pre-create so dashboards show 0 instead of "no data".
            self._rebalances[event] = self.rebalances_total.labels(event)
        self.commit_failures_total.inc(0)

    # -- hot path -------------------------------------------------------------

    def task_finished(
        self,
        handler: str,
        topic: str,
        outcome: str,
        duration_s: float,
        e2e_s: float | None,
    ) -> None:
        """Count one finished task and observe its duration (and end-to-end latency)."""
        key = (handler, topic, outcome)
        child = self._tasks.get(key)
        if child is None:
            child = self._tasks[key] = self.tasks_total.labels(handler, topic, outcome)
        child.inc()
        hist = self._duration.get(handler)
        if hist is None:
            hist = self._duration[handler] = self.task_duration.labels(handler)
        hist.observe(duration_s)
        if e2e_s is not None:
            e2e = self._e2e.get(handler)
            if e2e is None:
                e2e = self._e2e[handler] = self.task_e2e_latency.labels(handler)
            e2e.observe(e2e_s)

    def in_flight(self, handler: str, delta: int) -> None:
        """Add ``delta`` (+1 on start, -1 on finish) to the handler's in-flight gauge."""
        child = self._in_flight.get(handler)
        if child is None:
            child = self._in_flight[handler] = self.tasks_in_flight.labels(handler)
        child.inc(delta)

    def set_buffered(self, n: int) -> None:
        """Set the number of records waiting in the partition buffers."""
        self.buffered_records.set(n)

    def set_paused(self, n: int) -> None:
        """Set the number of partitions paused by flow control."""
        self.paused_partitions.set(n)

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

    def commit_failure(self) -> None:
        """Count a failed offset commit."""
        self.commit_failures_total.inc()

    def update_from_stats(self, stats_json: str) -> None:
        """Set ``ktf_consumer_lag`` from a librdkafka statistics JSON document.

        Meant to be called from ``stats_cb`` (``statistics.interval.ms``). Reads
        ``topics.<t>.partitions.<p>.consumer_lag``; skips the internal partition
        ``-1`` and partitions whose lag is unknown (``-1``, e.g. not assigned).
        Partitions that disappear from the statistics (revoked) are removed, so a
        stale lag does not linger after a rebalance. A malformed document is
        counted in ``ktf_stats_errors_total`` and otherwise ignored: statistics
        must never break the consumer.
        """
        try:
            stats = json.loads(stats_json)
            topics = stats.get("topics") or {}
            seen: dict[tuple[str, str], float] = {}
            for topic, tstats in topics.items():
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
        for key, lag in seen.items():
            child = self._lag_children.get(key)
            if child is None:
                child = self._lag_children[key] = self.consumer_lag.labels(*key)
            child.set(lag)
        for key in [k for k in self._lag_children if k not in seen]:
            del self._lag_children[key]
            with contextlib.suppress(KeyError):  # already removed
                self.consumer_lag.remove(*key)
