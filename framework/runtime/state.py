"""Per-record and per-partition state shared by the fetch loop and the pool."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from framework.runtime.offsets import OffsetTracker

if TYPE_CHECKING:
    from framework.registry import HandlerSpec


class PartitionState:
    """An assigned partition: its offsets, buffer count and flow-control flags."""

    __slots__ = (
        "buffered",
        "in_flight",
        "local_paused",
        "not_before_paused",
        "partition",
        "paused",
        "revoked",
        "topic",
        "tp",
        "tracker",
    )

    def __init__(self, topic: str, partition: int) -> None:
        self.topic = topic
        self.partition = partition
        self.tp = (topic, partition)
        self.tracker = OffsetTracker()
        #: fetched and not yet finished (queued, running or awaiting delivery)
        self.buffered = 0
        #: handler running right now
        self.in_flight = 0
        self.paused = False
        #: over its own watermarks (as opposed to paused by the global cap)
        self.local_paused = False
        #: paused until a retry record is due (retry tiers)
        self.not_before_paused = False
        self.revoked = False


class Envelope:
    """One fetched record on its way through the pool. Slots keep it small."""

    __slots__ = (
        "aborted",
        "attempt",
        "dead_lettered",
        "delivery_error",
        "headers",
        "key",
        "lane",
        "offset",
        "partition",
        "pending_deliveries",
        "spec",
        "state",
        "timestamp",
        "topic",
        "value",
    )

    def __init__(
        self,
        state: PartitionState,
        spec: HandlerSpec,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None,
        timestamp: int,
    ) -> None:
        self.state = state
        self.spec = spec
        self.topic = state.topic
        self.partition = state.partition
        self.offset = offset
        self.key = key
        self.value = value
        self.headers = headers
        self.timestamp = timestamp
        self.lane: Any = None
        self.pending_deliveries = 0
        #: stopped before it finished (shutdown): its offset must stay unfinished
        self.aborted = False
        self.delivery_error: Exception | None = None
        self.dead_lettered = False
        self.attempt = 1

    def header(self, name: str) -> str | None:
        """The last value of a header, decoded as UTF-8."""
        headers = self.headers
        if not headers:
            return None
        for hname, value in reversed(headers):
            if hname == name and value is not None:
                return value.decode("utf-8", "replace")
        return None

    @property
    def where(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"
