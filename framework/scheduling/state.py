"""The schedule-state topic: what each group's leader fired last, and who leads.

``ktf.schedules`` is a compacted one-partition topic shared by every worker group.
Its records are JSON (any language can read them) with a JSON key:

- ``["<group>", "schedule", "<name>"]`` -> ``{"last_due_ms", "task_id", "fired_at_ms",
  "epoch", "leader", "missed", "running"}``: the newest window the leader handled
  (fired or skipped);
- ``["<group>", "leader", ""]`` -> ``{"epoch", "leader", "since_ms"}``: written by each
  new leader in its first transaction.

Only the leader writes, and only inside transactions of the fencing producer, so a
reader with ``isolation.level=read_committed`` sees exactly the committed windows.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from framework.config import Settings
from framework.errors import KafkaError
from framework.routing.reader import reader_conf

STATE_TOPIC = "ktf.schedules"
LEADER_TOPIC = "ktf.leader"
#: Configuration of the state topic: compacted, so it stays one record per key.
STATE_TOPIC_CONFIG = {
    "cleanup.policy": "compact",
    "min.compaction.lag.ms": "60000",
    "segment.ms": "3600000",
}
#: Nothing is ever written to the leadership topic; it only carries the partition.
LEADER_TOPIC_CONFIG = {"retention.ms": "3600000"}

KIND_SCHEDULE = "schedule"
KIND_LEADER = "leader"


def leader_group(group: str) -> str:
    """The consumer group whose owner of ``ktf.leader`` partition 0 leads ``group``."""
    return f"{group}.ktf-leader"


def transactional_id(group: str) -> str:
    """The fencing producer's id: one per worker group."""
    return f"ktf-scheduler-{group}"


def state_key(group: str, kind: str, name: str = "") -> bytes:
    return json.dumps([group, kind, name], separators=(",", ":")).encode()


def encode_value(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


@dataclass
class WindowState:
    """The newest window of one schedule the leader handled."""

    last_due_ms: int
    task_id: str = ""
    fired_at_ms: int = 0
    epoch: int = 0
    leader: str = ""
    missed: int = 0
    #: task id -> fired at (ms) of runs not known to be finished (max_instances)
    running: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "last_due_ms": self.last_due_ms,
            "task_id": self.task_id,
            "fired_at_ms": self.fired_at_ms,
            "epoch": self.epoch,
            "leader": self.leader,
            "missed": self.missed,
            "running": self.running,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WindowState:
        return cls(
            last_due_ms=int(data["last_due_ms"]),
            task_id=str(data.get("task_id", "")),
            fired_at_ms=int(data.get("fired_at_ms", 0)),
            epoch=int(data.get("epoch", 0)),
            leader=str(data.get("leader", "")),
            missed=int(data.get("missed", 0)),
            running={str(k): int(v) for k, v in (data.get("running") or {}).items()},
        )


@dataclass
class LeaderState:
    epoch: int
    leader: str
    since_ms: int


@dataclass
class GroupState:
    """Everything the state topic holds for one worker group."""

    leader: LeaderState | None = None
    windows: dict[str, WindowState] = field(default_factory=dict)


def read_state(settings: Settings, group: str, timeout: float = 30.0) -> GroupState:
    """Read ``ktf.schedules`` to its end (committed records only) for ``group``.

    Blocking. Raises :class:`KafkaError` when the topic is missing or the end is
    not reached within ``timeout`` (a transaction of another group still open).
    """
    conf = reader_conf(settings, "schedules")
    conf["isolation.level"] = "read_committed"
    consumer = Consumer(conf)
    state = GroupState()
    try:
        tp = TopicPartition(STATE_TOPIC, 0)
        try:
            low, high = consumer.get_watermark_offsets(tp, timeout=timeout, cached=False)
        except KafkaException as exc:
            raise KafkaError(
                f"cannot read {STATE_TOPIC!r} (create it with `ktf topics ensure`): {exc}"
            ) from exc
        if high <= low:
            return state
        consumer.assign([TopicPartition(STATE_TOPIC, 0, OFFSET_BEGINNING)])
        deadline = time.monotonic() + timeout
        while True:
            for msg in consumer.consume(500, 0.2):
                if msg.error() is None:
                    _apply(state, group, msg.key(), msg.value())
            position = consumer.position([tp])[0].offset
            if position >= high:
                return state
            if time.monotonic() > deadline:
                raise KafkaError(
                    f"{STATE_TOPIC!r}: reached offset {position} of {high} in {timeout:.0f}s "
                    "(an open transaction holds the topic back?)"
                )
    finally:
        consumer.close()


def _apply(state: GroupState, group: str, key: bytes | None, value: bytes | None) -> None:
    if key is None:
        return
    try:
        rec_group, kind, name = json.loads(key)
    except (ValueError, TypeError):
        return  # not ours: the topic is open to other writers
    if rec_group != group:
        return
    if value is None:
        if kind == KIND_SCHEDULE:
            state.windows.pop(name, None)
        return
    try:
        data = json.loads(value)
        if kind == KIND_SCHEDULE:
            state.windows[name] = WindowState.from_json(data)
        elif kind == KIND_LEADER:
            state.leader = LeaderState(
                int(data["epoch"]), str(data.get("leader", "")), int(data.get("since_ms", 0))
            )
    except (ValueError, KeyError, TypeError):
        return
