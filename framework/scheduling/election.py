"""Leader election on Kafka alone: own partition 0 of the one-partition ``ktf.leader``.

Every worker with schedules joins the consumer group ``<group>.ktf-leader`` on
``ktf.leader``; the group coordinator gives the single partition to exactly one
member, and gives it to another within ``leader_session_timeout_ms`` when that
member dies. The group is separate from the task topics' group, so rebalances of
the task topics never move leadership. Nothing is produced to ``ktf.leader``.

Owning the partition makes a worker a *candidate*; it becomes the leader only once
its transactional producer has fenced the previous one (see
:mod:`framework.scheduling.scheduler`). Every method blocks: call them from the
scheduler's own thread.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Any

import structlog
from confluent_kafka import Consumer, KafkaException

from framework.config import Settings
from framework.errors import KafkaError
from framework.kafka.logs import first_in_window
from framework.scheduling.state import LEADER_TOPIC, leader_group

log = structlog.get_logger("framework.scheduling")

# Group properties of the worker's own consumer that must not carry over: static
# membership would keep a restarted worker's leadership from moving, and KIP-848
# ignores session.timeout.ms (the failover bound here).
_DROP = ("group.instance.id", "group.protocol", "partition.assignment.strategy")


class LeaderElection:
    """Whether this process owns ``ktf.leader`` partition 0 in the leader group."""

    def __init__(self, settings: Settings, group: str, member: str) -> None:
        conf: dict[str, Any] = settings.librdkafka("consumer")
        for key in _DROP:
            conf.pop(key, None)
        session = settings.leader_session_timeout_ms
        conf.update(
            {
                "group.id": leader_group(group),
                "client.id": f"{settings.client_id}-leader-{os.getpid()}",
                "session.timeout.ms": session,
                "heartbeat.interval.ms": max(100, session // 5),
                # Sticky: a member joining the leader group does not take the
                # partition away from the leader that owns it.
                "partition.assignment.strategy": "cooperative-sticky",
                "max.poll.interval.ms": max(settings.max_poll_interval_ms, session),
            }
        )
        self._conf = conf
        self.member = member
        self._consumer: Consumer | None = None
        self._lock = threading.Lock()
        self._owned = False
        #: bumped on every assignment change, so a takeover can tell it was interrupted
        self.changes = 0

    @property
    def owned(self) -> bool:
        return self._owned

    def start(self) -> None:
        try:
            self._consumer = Consumer(self._conf)
            self._consumer.subscribe(
                [LEADER_TOPIC],
                on_assign=self._assigned,
                on_revoke=self._revoked,
                on_lost=self._lost,
            )
        except KafkaException as exc:
            raise KafkaError(f"cannot join the leader group on {LEADER_TOPIC!r}: {exc}") from exc

    def poll(self, timeout: float) -> None:
        """Serve the group protocol (rebalance callbacks run in here)."""
        consumer = self._consumer
        if consumer is None:
            return
        try:
            for msg in consumer.consume(10, timeout):
                err = msg.error()
                if err is not None and not err.retriable() and first_in_window(str(err)):
                    log.warning("leader election consumer error", error=str(err))
        except KafkaException as exc:
            log.warning("leader election poll failed", error=str(exc))

    # Cooperative rebalances report increments: only a change of partition 0 counts.
    def _assigned(self, _consumer: Any, partitions: list[Any]) -> None:
        if any(p.partition == 0 for p in partitions):
            with self._lock:
                self._owned = True
                self.changes += 1

    def _revoked(self, _consumer: Any, partitions: list[Any]) -> None:
        if any(p.partition == 0 for p in partitions):
            self._lose()

    def _lost(self, _consumer: Any, _partitions: list[Any]) -> None:
        self._lose()

    def _lose(self) -> None:
        with self._lock:
            self._owned = False
            self.changes += 1

    def close(self) -> None:
        """Leave the leader group: the partition moves to another member at once."""
        consumer, self._consumer = self._consumer, None
        self._owned = False
        if consumer is not None:
            with contextlib.suppress(KafkaException, RuntimeError):
                consumer.close()
