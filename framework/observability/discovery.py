"""Finding a group's live workers (``ktf.workers``) and sampling their ``/metrics``.

:func:`read_announcements` reads the last ``lookback`` of ``ktf.workers`` (every
live worker re-announced within its TTL, so older records only matter for
tombstones), keeps the latest record per worker, and splits the group's entries
into live and expired ones. :func:`sample_worker` scrapes one ``/metrics`` into a
:class:`WorkerSample`; :func:`quantile` turns histogram bucket deltas into
percentiles the way Prometheus' ``histogram_quantile`` does.
"""

from __future__ import annotations

import math
import os
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from framework.config import Settings
from framework.observability.announce import WORKERS_TOPIC, Announcement, decode_announcement

__all__ = [
    "Discovered",
    "WorkerSample",
    "parse_worker_metrics",
    "quantile",
    "read_announcements",
    "sample_worker",
]

#: Outcomes that are not errors (``ktf_tasks_total``'s outcome label).
NON_ERROR_OUTCOMES = frozenset({"ok", "cancelled", "expired"})
_LOOKBACK_S = 600.0


@dataclass(frozen=True)
class Discovered:
    """The group's announcements: live ones, and those whose TTL ran out."""

    live: tuple[Announcement, ...] = ()
    expired: tuple[Announcement, ...] = ()
    #: why discovery found nothing it could trust (no topic, broker error), or None
    error: str | None = None


def read_announcements(
    settings: Settings,
    group: str,
    timeout: float,
    *,
    lookback: float = _LOOKBACK_S,
    now_ms: int | None = None,
) -> Discovered:
    """Announcements of ``group`` on ``ktf.workers`` (bounded by ``timeout`` seconds)."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    conf = settings.librdkafka("consumer")
    conf.pop("group.instance.id", None)
    # Never joins or commits: partitions are assigned by hand and read once.
    conf.update({"group.id": f"ktf-top-{os.getpid()}", "enable.auto.commit": False})
    deadline = time.monotonic() + timeout
    consumer = Consumer(conf)
    latest: dict[bytes, Announcement | None] = {}
    try:
        md = consumer.list_topics(WORKERS_TOPIC, timeout=timeout)
        meta = md.topics.get(WORKERS_TOPIC)
        if meta is None or meta.error is not None or not meta.partitions:
            return Discovered(error=f"no {WORKERS_TOPIC} topic: no worker has announced itself")
        now = int(time.time() * 1000) if now_ms is None else now_ms
        since = now - int(lookback * 1000)
        wanted = [TopicPartition(WORKERS_TOPIC, p, since) for p in sorted(meta.partitions)]
        found = consumer.offsets_for_times(wanted, timeout=_left(deadline))
        ends: dict[int, int] = {}
        assign = []
        for tp in found:
            _, hi = consumer.get_watermark_offsets(
                TopicPartition(WORKERS_TOPIC, tp.partition), timeout=_left(deadline)
            )
            start = tp.offset if tp.offset >= 0 else hi
            if start < hi:
                ends[tp.partition] = hi
                assign.append(TopicPartition(WORKERS_TOPIC, tp.partition, start))
        if assign:
            consumer.assign(assign)
        while ends and time.monotonic() < deadline:
            for msg in consumer.consume(500, min(0.2, _left(deadline))):
                if msg.error() is not None:
                    continue
                key = msg.key() or b""
                value = msg.value()
                latest[key] = None if value is None else decode_announcement(value)
                part, off = int(msg.partition() or 0), int(msg.offset() or 0)
                if off + 1 >= ends.get(part, 0):
                    ends.pop(part, None)
        if ends:
            return _split(latest, group, now, error=f"reading {WORKERS_TOPIC} timed out")
        return _split(latest, group, now)
    except KafkaException as exc:
        return Discovered(error=f"reading {WORKERS_TOPIC}: {exc.args[0] if exc.args else exc}")
    finally:
        consumer.close()


def _left(deadline: float) -> float:
    return max(0.1, deadline - time.monotonic())


def _split(
    latest: dict[bytes, Announcement | None], group: str, now_ms: int, error: str | None = None
) -> Discovered:
    live: list[Announcement] = []
    expired: list[Announcement] = []
    for ann in latest.values():
        if ann is None or ann.group != group:
            continue
        (expired if ann.expired(now_ms) else live).append(ann)
    key = lambda a: a.worker_id  # noqa: E731
    return Discovered(tuple(sorted(live, key=key)), tuple(sorted(expired, key=key)), error)


# -- scraping ------------------------------------------------------------------------


@dataclass
class WorkerSample:
    """One scrape of one worker's ``/metrics`` (handler series summed)."""

    at: float
    tasks: float = 0.0
    errors: float = 0.0
    in_flight: float = 0.0
    buffered: float = 0.0
    paused: float = 0.0
    assigned: float | None = None
    lag: float = 0.0
    retry_backlog: float = 0.0
    #: ktf_task_duration_seconds buckets, upper bound -> cumulative count
    duration: dict[float, float] = field(default_factory=dict)
    loop_lag: float | None = None
    executor_saturation: float | None = None
    by_handler: dict[str, tuple[float, float]] = field(default_factory=dict)  # tasks, errors


def parse_worker_metrics(text: str, at: float) -> WorkerSample:
    """A :class:`WorkerSample` from Prometheus text exposition."""
    s = WorkerSample(at=at)
    for family in text_string_to_metric_families(text):
        for m in family.samples:
            name, labels, v = m.name, m.labels, m.value
            if name == "ktf_tasks_total":
                s.tasks += v
                err = labels.get("outcome", "") not in NON_ERROR_OUTCOMES
                if err:
                    s.errors += v
                h = labels.get("handler", "")
                t, e = s.by_handler.get(h, (0.0, 0.0))
                s.by_handler[h] = (t + v, e + (v if err else 0.0))
            elif name == "ktf_tasks_in_flight":
                s.in_flight += v
            elif name == "ktf_buffered_records":
                s.buffered += v
            elif name == "ktf_paused_partitions":
                s.paused += v
            elif name == "ktf_assigned_partitions":
                s.assigned = (s.assigned or 0.0) + v
            elif name == "ktf_consumer_lag":
                s.lag += v
            elif name == "ktf_retry_backlog":
                s.retry_backlog += v
            elif name == "ktf_task_duration_seconds_bucket":
                le = float(labels.get("le", "inf"))
                s.duration[le] = s.duration.get(le, 0.0) + v
            elif name == "ktf_event_loop_lag_seconds":
                s.loop_lag = max(s.loop_lag or 0.0, v)
            elif name == "ktf_executor_saturation":
                s.executor_saturation = max(s.executor_saturation or 0.0, v)
    return s


def sample_worker(url: str, timeout: float) -> WorkerSample:
    """Scrape ``url``; raises OSError or ValueError when the worker cannot be read."""
    at = time.monotonic()
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        text = resp.read().decode("utf-8", "replace")
    return parse_worker_metrics(text, at)


def quantile(
    q: float, buckets: dict[float, float], before: dict[float, float] | None
) -> float | None:
    """The ``q`` quantile of the observations between two cumulative bucket snapshots.

    Linear interpolation inside the bucket, as Prometheus' ``histogram_quantile``;
    observations in the ``+Inf`` bucket report the highest finite bound. None when
    nothing was observed in between.
    """
    bounds = sorted(buckets)
    if not bounds:
        return None
    counts = [buckets[b] - (before or {}).get(b, 0.0) for b in bounds]
    total = counts[-1]
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, cum in zip(bounds, counts, strict=True):
        if cum >= rank:
            if math.isinf(bound):
                return lower
            in_bucket = cum - below
            if in_bucket <= 0:
                return bound
            return lower + (bound - lower) * (rank - below) / in_bucket
        lower, below = (bound if not math.isinf(bound) else lower), cum
    return lower


def describe_error(exc: BaseException) -> str:
    """A short reason for an unreachable worker (refused, timed out, HTTP 500, ...)."""
    reason: Any = getattr(exc, "reason", None)
    if reason is None:
        return str(exc) or type(exc).__name__
    return str(getattr(reason, "strerror", None) or reason)
