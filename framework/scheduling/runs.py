"""Which scheduled runs have finished, for ``max_instances``.

A schedule with ``max_instances`` sends its tasks with ``ktf-reply-to:
ktf.schedules.runs``: whichever worker runs a task writes its final outcome there
(``ok``, ``error``, ``expired`` or ``cancelled``; a retried task replies only when
it is done). The leader follows that topic from the oldest run its state still
counts as unfinished, so a new leader learns about runs that ended during the
failover. Without ``max_instances`` nothing here touches Kafka.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import TYPE_CHECKING

from confluent_kafka import OFFSET_END, Consumer, KafkaException, TopicPartition

from framework import headers as h
from framework.config import Settings
from framework.errors import KafkaError
from framework.routing.reader import reader_conf

if TYPE_CHECKING:
    from framework.scheduling.schedule import Schedule
    from framework.scheduling.state import WindowState

RUNS_TOPIC = "ktf.schedules.runs"
RUNS_TOPIC_CONFIG = {"retention.ms": str(7 * 24 * 3600 * 1000)}


class RunTracker:
    """Follows ``ktf.schedules.runs`` while leading (blocking; scheduler thread)."""

    def __init__(self, settings: Settings, *, needed: bool) -> None:
        self._settings = settings
        self._consumer: Consumer | None = None
        #: some schedule has max_instances
        self.needed = needed

    def reply_to(self, schedule: Schedule) -> str | None:
        return RUNS_TOPIC if schedule.max_instances is not None else None

    def follow(self, windows: Mapping[str, WindowState]) -> None:
        """(Re)start reading from the oldest unfinished run of ``windows``."""
        self.close()
        if not self.needed:
            return
        starts = [t for w in windows.values() for t in w.running.values()]
        conf = reader_conf(self._settings, "runs")
        consumer = Consumer(conf)
        tp = TopicPartition(RUNS_TOPIC, 0, OFFSET_END)
        if starts:
            # A second early: a reply is written after its task was fired.
            wanted = [TopicPartition(RUNS_TOPIC, 0, min(starts) - 1000)]
            try:
                found = consumer.offsets_for_times(wanted, timeout=10.0)
            except KafkaException as exc:
                consumer.close()
                raise KafkaError(f"cannot look up {RUNS_TOPIC!r} by time: {exc}") from exc
            if found and found[0].offset >= 0:
                tp = TopicPartition(RUNS_TOPIC, 0, found[0].offset)
        consumer.assign([tp])
        self._consumer = consumer

    def drain(self) -> set[str]:
        """Task ids whose final outcome arrived since the last call."""
        consumer = self._consumer
        done: set[str] = set()
        if consumer is None:
            return done
        try:
            messages = consumer.consume(1000, 0)
        except KafkaException:
            return done
        for msg in messages:
            if msg.error() is not None:
                continue
            task_id = h.to_dict(msg.headers()).get(h.TASK_ID)  # type: ignore[arg-type]
            if task_id:
                done.add(task_id)
        return done

    def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            with contextlib.suppress(KafkaException, RuntimeError):
                consumer.close()
