"""Dead-letter tooling: list, show and replay the records of a ``<topic>.dlq``.

Reading never joins a consumer group and never commits: partitions are assigned
directly and read up to the end offsets taken when the read starts, so a listing
terminates even while new dead letters arrive. Replay produces each selected
record's original key and value back to its ``ktf-original-topic`` with
``ktf-attempt`` reset to 1, the failure headers removed and
``ktf-replayed-from: <dlq topic>/<partition>/<offset>`` added; the dead-letter
topic is left as it is (nothing is deleted).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from framework import headers as h
from framework.config import Settings
from framework.errors import ConfigError, KafkaError
from framework.kafka.producer import KafkaProducer
from framework.kafka.watermarks import watermarks
from framework.routing.reader import reader_conf

#: Headers a replayed record must not carry: it is a fresh first delivery.
_DROPPED_ON_REPLAY = frozenset(
    {
        h.NOT_BEFORE,
        h.ERROR_TYPE,
        h.ERROR_MESSAGE,
        h.ERROR_STACK,
        h.ORIGINAL_TOPIC,
        h.ORIGINAL_PARTITION,
        h.ORIGINAL_OFFSET,
        h.ORIGINAL_TIMESTAMP,
        h.CONSUMER_GROUP,
        h.FAILED_AT,
        h.REPLAYED_FROM,
        h.STATUS,
    }
)


@dataclass(frozen=True)
class DlqRecord:
    """One dead letter as read from its topic."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)

    @property
    def header_map(self) -> dict[str, str]:
        return h.to_dict(self.headers)  # type: ignore[arg-type]

    @property
    def where(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"

    @property
    def error_type(self) -> str:
        return self.header_map.get(h.ERROR_TYPE, "")

    @property
    def failed_at(self) -> int:
        """``ktf-failed-at`` (epoch ms), else the record timestamp."""
        raw = self.header_map.get(h.FAILED_AT)
        try:
            return int(raw) if raw else self.timestamp
        except ValueError:
            return self.timestamp


@dataclass(frozen=True)
class DlqFilter:
    """Which dead letters to select; None means: any."""

    error_type: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    count: int | None = None

    def matches(self, rec: DlqRecord) -> bool:
        if self.error_type is not None and rec.error_type != self.error_type:
            return False
        at = rec.failed_at
        if self.since_ms is not None and at < self.since_ms:
            return False
        return not (self.until_ms is not None and at >= self.until_ms)


def dlq_name(topic: str) -> str:
    """``<topic>.dlq`` unless ``topic`` already is a dead-letter topic."""
    return topic if topic.endswith(".dlq") else h.dlq_topic(topic)


def parse_time(value: str) -> int:
    """Epoch milliseconds from epoch ms digits or an ISO 8601 time (UTC if no zone)."""
    text = value.strip()
    if text.isdigit():
        return int(text)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(
            f"time {value!r} is neither epoch milliseconds nor ISO 8601 (2026-01-31T12:00:00Z)"
        ) from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def read(
    settings: Settings,
    topic: str,
    flt: DlqFilter | None = None,
    *,
    timeout: float = 30.0,
) -> Iterator[DlqRecord]:
    """Selected dead letters of ``topic`` (a task topic or its ``.dlq``), oldest first per partition.

    Bounded by the end offsets at start and by ``timeout`` seconds overall.
    """
    flt = flt or DlqFilter()
    name = dlq_name(topic)
    conf = reader_conf(settings, "dlq")
    try:
        consumer = Consumer(conf)
    except (KafkaException, ValueError) as exc:
        raise KafkaError(f"cannot read {name}: {exc}") from exc
    try:
        yield from _read(consumer, name, flt, timeout)
    finally:
        consumer.close()


def _read(consumer: Any, name: str, flt: DlqFilter, timeout: float) -> Iterator[DlqRecord]:
    deadline = time.monotonic() + timeout
    try:
        md = consumer.list_topics(name, timeout=min(10.0, timeout))
    except KafkaException as exc:
        raise KafkaError(f"cannot read metadata of {name}: {exc}") from exc
    meta = md.topics.get(name)
    if meta is None or meta.error is not None or not meta.partitions:
        raise KafkaError(f"dead-letter topic {name!r} does not exist")
    ends: dict[int, int] = {}
    starts: list[TopicPartition] = []
    for p in sorted(meta.partitions):
        try:
            low, high = watermarks(consumer, TopicPartition(name, p), min(10.0, timeout))
        except KafkaException as exc:
            raise KafkaError(f"cannot read offsets of {name}[{p}]: {exc}") from exc
        if high > low:
            ends[p] = high
            starts.append(TopicPartition(name, p, OFFSET_BEGINNING))
    if flt.since_ms is not None and starts:
        # ktf-failed-at is the produce time, so the record timestamp index is a safe lower bound.
        found = consumer.offsets_for_times(
            [TopicPartition(name, tp.partition, flt.since_ms) for tp in starts], timeout=10.0
        )
        starts = []
        for tp in found:
            if tp.offset < 0 or tp.offset >= ends[tp.partition]:
                ends.pop(tp.partition, None)
            else:
                starts.append(TopicPartition(name, tp.partition, tp.offset))
    if not ends:
        return
    consumer.assign(starts)
    selected = 0
    while ends:
        if time.monotonic() > deadline:
            raise KafkaError(
                f"reading {name} timed out after {timeout:.0f}s with partitions "
                f"{sorted(ends)} unfinished"
            )
        for msg in consumer.consume(500, 0.5):
            if msg.error() is not None:
                continue
            p = msg.partition()
            end = ends.get(p)
            if end is None or msg.offset() >= end:
                continue
            rec = DlqRecord(
                name,
                p,
                msg.offset(),
                msg.timestamp()[1],
                msg.key(),
                msg.value(),
                list(msg.headers() or []),
            )
            if msg.offset() >= end - 1:
                del ends[p]
            if flt.matches(rec):
                yield rec
                selected += 1
                if flt.count is not None and selected >= flt.count:
                    return


def replay_headers(rec: DlqRecord) -> list[tuple[str, bytes]]:
    """The headers of a replayed record: attempt 1, no failure headers, replayed-from."""
    out = [(k, v) for k, v in rec.headers if k not in _DROPPED_ON_REPLAY and k != h.ATTEMPT]
    out.append((h.ATTEMPT, b"1"))
    out.append((h.REPLAYED_FROM, rec.where.encode()))
    return out


def replay_target(rec: DlqRecord) -> str:
    """Where a dead letter goes back to: its ``ktf-original-topic``."""
    target = rec.header_map.get(h.ORIGINAL_TOPIC)
    if not target:
        raise KafkaError(f"dead letter {rec.where} has no {h.ORIGINAL_TOPIC} header; cannot replay")
    return target


@dataclass
class ReplayStats:
    """What a replay did (or, with ``dry_run``, would do)."""

    selected: int = 0
    sent: int = 0
    failed: int = 0
    targets: dict[str, int] = field(default_factory=dict)


def replay(
    settings: Settings,
    topic: str,
    flt: DlqFilter | None = None,
    *,
    dry_run: bool = False,
    progress: Callable[[ReplayStats, DlqRecord], None] | None = None,
    timeout: float = 60.0,
) -> ReplayStats:
    """Send selected dead letters back to their original topics; see the module docstring."""
    stats = ReplayStats()
    errors: list[str] = []
    producer: KafkaProducer | None = None
    if not dry_run:
        producer = KafkaProducer(settings)
        producer.start()
    try:
        for rec in read(settings, topic, flt, timeout=timeout):
            target = replay_target(rec)
            stats.selected += 1
            stats.targets[target] = stats.targets.get(target, 0) + 1
            if producer is not None:

                def delivered(err: Any, _msg: Any, where: str = rec.where) -> None:
                    if err is not None:
                        errors.append(f"{where}: {err}")

                producer.produce(
                    target,
                    rec.value,
                    key=rec.key,
                    headers=replay_headers(rec),
                    on_delivery=delivered,
                )
                stats.sent += 1
            if progress is not None:
                progress(stats, rec)
        if producer is not None:
            left = producer.flush(timeout)
            if left:
                errors.append(f"{left} records not acknowledged within {timeout:.0f}s")
    finally:
        if producer is not None:
            producer.close(5.0)
    stats.failed = len(errors)
    if errors:
        raise KafkaError(
            f"replay from {dlq_name(topic)}: {len(errors)} of {stats.sent} records failed; "
            f"first: {errors[0]}"
        )
    return stats
