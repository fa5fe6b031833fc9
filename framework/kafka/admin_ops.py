"""Consumer-group and offset queries for the operations commands (lag, groups, top).

Thin wrappers over ``confluent_kafka.admin.AdminClient``: every call has a
bounded timeout, every failure becomes one :class:`KafkaError` line naming the
group or topic, and results are plain dataclasses (no confluent-kafka types leak
out). No network traffic happens until a method is called.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, TypeVar

from confluent_kafka import (
    ConsumerGroupTopicPartitions,
    IsolationLevel,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin import OffsetSpec as _OffsetSpec  # type: ignore[attr-defined]

from framework.config import Settings
from framework.errors import KafkaError

__all__ = [
    "GroupDescription",
    "GroupListing",
    "GroupOps",
    "LagReport",
    "LagRow",
    "MemberInfo",
]

# confluent-kafka's OffsetSpec is untyped; reach it through Any once.
OffsetSpec: Any = _OffsetSpec

T = TypeVar("T")
TP = tuple[str, int]

_LIBRDKAFKA_LOG = logging.getLogger("ktf.librdkafka.admin")

# librdkafka's "no offset" sentinel (OFFSET_INVALID).
_NO_OFFSET = -1001


@dataclass(frozen=True)
class GroupListing:
    """One consumer group as ``ktf groups`` shows it."""

    group_id: str
    state: str
    type: str
    protocol: str
    members: int


@dataclass(frozen=True)
class MemberInfo:
    """One member of a consumer group."""

    member_id: str
    client_id: str
    host: str
    group_instance_id: str | None
    assignment: tuple[TP, ...]


@dataclass(frozen=True)
class GroupDescription:
    """A consumer group's state, coordinator and members."""

    group_id: str
    state: str
    type: str
    protocol: str
    coordinator: str
    members: tuple[MemberInfo, ...]


@dataclass(frozen=True)
class LagRow:
    """Lag of one partition. ``committed`` is None when the group has no offset there."""

    topic: str
    partition: int
    committed: int | None
    start: int
    end: int
    lag: int
    note: str = ""


@dataclass(frozen=True)
class LagReport:
    """Per-partition lag of a group plus the total."""

    group: str
    rows: tuple[LagRow, ...] = field(default_factory=tuple)

    @property
    def total(self) -> int:
        return sum(r.lag for r in self.rows)


def _enum_name(value: Any) -> str:
    name = getattr(value, "name", None)
    return str(name if name is not None else value).lower()


def _error_code(exc: BaseException) -> str:
    err = exc.args[0] if exc.args else None
    name = getattr(err, "name", None)
    return str(name()) if callable(name) else ""


class GroupOps:
    """Group, offset and watermark queries against one cluster."""

    def __init__(self, settings: Settings, timeout: float = 10.0) -> None:
        self._settings = settings
        self.timeout = timeout
        self._client: AdminClient | None = None

    @property
    def client(self) -> AdminClient:
        if self._client is None:
            try:
                conf = self._settings.librdkafka("admin")
                # Route librdkafka's own log lines (connection refused, retries) to
                # stdlib logging instead of raw stderr: the ops commands report one
                # clear error line themselves when a request times out.
                conf.setdefault("logger", _LIBRDKAFKA_LOG)
                self._client = AdminClient(conf)
            except KafkaException as exc:
                raise KafkaError(f"cannot create admin client: {exc}") from exc
        return self._client

    # -- helpers --------------------------------------------------------------

    def _wait(self, fut: Future[T], what: str) -> T:
        try:
            return fut.result(timeout=self.timeout)
        except FutureTimeout as exc:
            raise KafkaError(
                f"{what}: no answer from {self._settings.bootstrap_servers} "
                f"within {self.timeout:g}s"
            ) from exc
        except KafkaException as exc:
            raise KafkaError(f"{what}: {exc.args[0] if exc.args else exc}") from exc

    def _req(self) -> dict[str, Any]:
        return {"request_timeout": self.timeout}

    # -- groups ---------------------------------------------------------------

    def list_groups(self) -> list[GroupListing]:
        """All consumer groups with state, type, protocol and member count."""
        listed = self._wait(self.client.list_consumer_groups(**self._req()), "listing groups")
        ids = sorted(g.group_id for g in listed.valid)
        if not ids:
            return []
        described = self._describe_many(ids)
        out = []
        for g in sorted(listed.valid, key=lambda g: g.group_id):
            d = described.get(g.group_id)
            out.append(
                GroupListing(
                    group_id=g.group_id,
                    state=_enum_name(g.state),
                    type=_enum_name(g.type) if g.type is not None else "unknown",
                    protocol=d.protocol if d else "",
                    members=len(d.members) if d else 0,
                )
            )
        return out

    def _describe_many(self, ids: list[str]) -> dict[str, GroupDescription]:
        futures = self.client.describe_consumer_groups(ids, **self._req())
        out: dict[str, GroupDescription] = {}
        for gid, fut in futures.items():
            try:
                out[gid] = self._convert(self._wait(fut, f"describing group {gid!r}"))
            except KafkaError:
                continue  # listed a moment ago and gone now: show it without members
        return out

    def describe_group(self, group: str) -> GroupDescription:
        """Members, client ids, hosts and assignments of ``group``.

        Raises KafkaError naming the group if it does not exist.
        """
        fut = self.client.describe_consumer_groups([group], **self._req())[group]
        try:
            desc = fut.result(timeout=self.timeout)
        except FutureTimeout as exc:
            raise KafkaError(
                f"describing group {group!r}: no answer from "
                f"{self._settings.bootstrap_servers} within {self.timeout:g}s"
            ) from exc
        except KafkaException as exc:
            if _error_code(exc) in ("GROUP_ID_NOT_FOUND", "_NOENT"):
                raise KafkaError(f"consumer group {group!r} does not exist") from exc
            raise KafkaError(f"describing group {group!r}: {exc.args[0]}") from exc
        result = self._convert(desc)
        if result.state in ("dead", "unknown") and not result.members:
            raise KafkaError(f"consumer group {group!r} does not exist")
        return result

    @staticmethod
    def _convert(desc: Any) -> GroupDescription:
        members = []
        for m in desc.members or ():
            tps = getattr(m.assignment, "topic_partitions", None) or ()
            members.append(
                MemberInfo(
                    member_id=m.member_id,
                    client_id=m.client_id,
                    host=m.host.lstrip("/"),
                    group_instance_id=m.group_instance_id,
                    assignment=tuple(sorted((tp.topic, tp.partition) for tp in tps)),
                )
            )
        coord = desc.coordinator
        coordinator = f"{coord.host}:{coord.port} (id {coord.id})" if coord is not None else ""
        return GroupDescription(
            group_id=desc.group_id,
            state=_enum_name(desc.state),
            type=_enum_name(getattr(desc, "type", "unknown")),
            protocol=desc.partition_assignor or "",
            coordinator=coordinator,
            members=tuple(sorted(members, key=lambda m: (m.client_id, m.member_id))),
        )

    # -- offsets --------------------------------------------------------------

    def committed_offsets(self, group: str) -> dict[TP, int]:
        """The group's committed offsets (partitions without one are left out)."""
        req = [ConsumerGroupTopicPartitions(group)]
        fut = self.client.list_consumer_group_offsets(req, **self._req())[group]
        res = self._wait(fut, f"reading committed offsets of group {group!r}")
        out: dict[TP, int] = {}
        for tp in res.topic_partitions or ():
            if tp.error is not None:
                raise KafkaError(
                    f"committed offset of group {group!r} on {tp.topic}[{tp.partition}]: {tp.error}"
                )
            if tp.offset >= 0:
                out[(tp.topic, tp.partition)] = tp.offset
        return out

    def partitions(self, topics: Iterable[str]) -> dict[str, list[int]]:
        """Partition ids of each topic. Raises KafkaError naming a missing topic."""
        wanted = sorted(set(topics))
        try:
            md = self.client.list_topics(timeout=self.timeout)
        except KafkaException as exc:
            raise KafkaError(
                f"cannot read metadata from {self._settings.bootstrap_servers} "
                f"within {self.timeout:g}s: {exc}"
            ) from exc
        out: dict[str, list[int]] = {}
        for name in wanted:
            meta = md.topics.get(name)
            if meta is None or meta.error is not None:
                raise KafkaError(f"topic {name!r} does not exist")
            out[name] = sorted(meta.partitions)
        return out

    def watermarks(self, tps: Iterable[TP]) -> dict[TP, tuple[int, int]]:
        """(log start, end) offsets per partition, as a read_committed consumer sees them.

        The end is the last stable offset, which equals the high watermark unless
        transactions are open; read_committed is librdkafka's default.
        """
        keys = sorted(set(tps))
        if not keys:
            return {}
        out: dict[TP, tuple[int, int]] = {}
        ends = self._list_offsets(keys, OffsetSpec.latest())
        starts = self._list_offsets(keys, OffsetSpec.earliest())
        for key in keys:
            out[key] = (starts[key], ends[key])
        return out

    def _list_offsets(self, keys: list[TP], spec: Any) -> dict[TP, int]:
        request = {TopicPartition(t, p): spec for t, p in keys}
        futures = self.client.list_offsets(
            request, isolation_level=IsolationLevel.READ_COMMITTED, **self._req()
        )
        out: dict[TP, int] = {}
        for tp, fut in futures.items():
            info = self._wait(fut, f"reading offsets of {tp.topic}[{tp.partition}]")
            out[(tp.topic, tp.partition)] = int(info.offset)
        return out

    def lag(self, group: str, topic: str | None = None) -> LagReport:
        """Per-partition committed offset, end offset and lag of ``group``.

        Covers every partition of the topics the group has committed offsets on
        or is assigned (or only ``topic``). A partition without a committed
        offset counts its whole retained log (end - start) as lag.
        """
        committed = self.committed_offsets(group)
        assigned: set[str] = set()
        if not committed or topic is None:
            try:
                desc = self.describe_group(group)
            except KafkaError as exc:
                if "does not exist" in str(exc) and not committed:
                    raise KafkaError(
                        f"consumer group {group!r} does not exist "
                        "(no members and no committed offsets)"
                    ) from exc
                if "does not exist" not in str(exc):
                    raise
            else:
                assigned = {t for m in desc.members for t, _ in m.assignment}
        topics = {topic} if topic else {t for t, _ in committed} | assigned
        parts = self.partitions(topics)
        keys = [(t, p) for t in sorted(parts) for p in parts[t]]
        marks = self.watermarks(keys)
        rows = []
        for key in keys:
            start, end = marks[key]
            off = committed.get(key)
            if off is None:
                rows.append(LagRow(*key, None, start, end, max(end - start, 0), "no commit"))
            elif off < start:
                note = "committed offset below log start (deleted by retention)"
                rows.append(LagRow(*key, off, start, end, max(end - start, 0), note))
            else:
                rows.append(LagRow(*key, off, start, end, max(end - off, 0)))
        return LagReport(group, tuple(rows))
