"""Workers announce themselves on ``ktf.workers`` so ``ktf top --group G`` finds them.

Each worker produces a small JSON record every ``announce_interval`` seconds to the
compacted topic ``ktf.workers``, keyed by (group, worker id): who it is (worker id,
static instance id, client id, member id, host, pid), where its ``/metrics`` is,
which topics it consumes, and how long the record stays valid (``ttl_ms``, three
intervals plus a margin). A clean stop writes a tombstone; a SIGKILLed worker
writes nothing, so readers drop announcements older than their ``ttl_ms``.

Why a topic, and not the group metadata the broker returns: librdkafka gives an
application no way to put user data in its group membership, so the only
per-member fields a describe-group answer carries are the client id and the host
the broker saw (often a NAT or node address, and never the metrics port).
Encoding the endpoint in ``client.id`` would break quotas and ACLs keyed on it.
``ktf.control`` is read by every worker and is not compacted. A compacted topic
keeps exactly the latest record per worker, is readable with the same
credentials as the task topics, and needs no extra service. ``ktf top`` still
asks the broker for the group's members, to show which announced workers really
are members and which members never announced.

Announcing must never hurt the worker: every failure is logged (once per kind)
and the worker goes on without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import structlog

from framework.config import Settings

__all__ = [
    "WORKERS_TOPIC",
    "Announcement",
    "Announcer",
    "announcement_key",
    "decode_announcement",
    "workers_topic_config",
]

log = structlog.get_logger("framework.announce")

#: The compacted topic workers announce themselves on.
WORKERS_TOPIC = "ktf.workers"
_SCHEMA_VERSION = 1
_TTL_MARGIN_MS = 5_000


def workers_topic_config() -> dict[str, str]:
    """Topic configuration of ``ktf.workers``: compacted, and dead entries age out."""
    return {
        "cleanup.policy": "compact,delete",
        # Live workers re-announce every few seconds; a day keeps history for nothing.
        "retention.ms": str(3600 * 1000),
        "segment.ms": str(600 * 1000),
        "min.cleanable.dirty.ratio": "0.1",
        "delete.retention.ms": str(600 * 1000),
    }


@dataclass(frozen=True)
class Announcement:
    """One worker's identity and metrics endpoint, as written to ``ktf.workers``."""

    group: str
    worker_id: str
    host: str
    pid: int
    client_id: str
    instance_id: str | None
    member_id: str | None
    metrics_url: str | None
    topics: tuple[str, ...]
    started_at_ms: int
    announced_at_ms: int
    ttl_ms: int
    version: int = _SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def expired(self, now_ms: int) -> bool:
        """Whether the worker failed to re-announce within its ``ttl_ms``."""
        return now_ms - self.announced_at_ms > self.ttl_ms

    def encode(self) -> bytes:
        data = asdict(self)
        data["topics"] = list(self.topics)
        return json.dumps(data, separators=(",", ":"), sort_keys=True).encode()


def announcement_key(group: str, worker_id: str) -> bytes:
    """The record key: unambiguous whatever characters the group id holds."""
    return json.dumps([group, worker_id], separators=(",", ":")).encode()


def decode_announcement(value: bytes) -> Announcement | None:
    """An announcement from record bytes, or None when they are not one we understand."""
    try:
        data = json.loads(value)
        if not isinstance(data, dict):
            return None
        return Announcement(
            group=str(data["group"]),
            worker_id=str(data["worker_id"]),
            host=str(data.get("host", "")),
            pid=int(data.get("pid", 0)),
            client_id=str(data.get("client_id", "")),
            instance_id=_opt_str(data.get("instance_id")),
            member_id=_opt_str(data.get("member_id")),
            metrics_url=_opt_str(data.get("metrics_url")),
            topics=tuple(str(t) for t in data.get("topics") or ()),
            started_at_ms=int(data.get("started_at_ms", 0)),
            announced_at_ms=int(data["announced_at_ms"]),
            ttl_ms=int(data["ttl_ms"]),
            version=int(data.get("version", _SCHEMA_VERSION)),
            extra=dict(data.get("extra") or {}),
        )
    except (ValueError, KeyError, TypeError):
        return None


def _opt_str(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def worker_id_of(settings: Settings) -> str:
    """Stable id: the static instance id (pod name) if set, else host and pid."""
    return settings.group_instance_id or f"{socket.gethostname()}-{os.getpid()}"


def advertised_host(settings: Settings) -> str:
    """Where others reach this worker: ``advertised_host`` or this machine's name."""
    return settings.advertised_host or socket.getfqdn() or socket.gethostname()


def member_id_of(consumer: Any) -> str | None:
    """The group member id librdkafka holds now (None before the first join)."""
    if consumer is None:
        return None
    try:
        member = consumer.raw.memberid()
    except Exception:  # not started, closed or not yet joined: no member id
        return None
    return str(member) if member else None


class Announcer:
    """Writes this worker's :class:`Announcement` periodically; a tombstone on stop.

    ``metrics_port`` and ``member_id`` are read at each announcement (the HTTP port
    is known after binding, the member id after joining). No network in the
    constructor; :meth:`start` spawns the loop, :meth:`stop` ends it.
    """

    def __init__(
        self,
        settings: Settings,
        topics: Sequence[str],
        *,
        metrics_port: Callable[[], int | None],
        member_id: Callable[[], str | None],
        interval: float | None = None,
    ) -> None:
        self.settings = settings
        self.interval = settings.announce_interval if interval is None else interval
        self.topics = tuple(topics)
        self._metrics_port = metrics_port
        self._member_id = member_id
        self.worker_id = worker_id_of(settings)
        self.host = advertised_host(settings)
        self._key = announcement_key(settings.group_id, self.worker_id)
        self._started_at_ms = int(time.time() * 1000)
        self._producer: Any = None
        self._task: asyncio.Task[None] | None = None
        self._warned: set[str] = set()
        #: announcements written (delivered), for tests and tools
        self.delivered = 0

    @property
    def enabled(self) -> bool:
        return self.interval > 0

    def current(self) -> Announcement:
        """What would be announced now."""
        port = self._metrics_port()
        url = f"http://{_url_host(self.host)}:{port}/metrics" if port else None
        if self.settings.advertised_metrics_url is not None:  # a supervised process
            url = self.settings.advertised_metrics_url or None
        return Announcement(
            group=self.settings.group_id,
            worker_id=self.worker_id,
            host=self.host,
            pid=os.getpid(),
            client_id=self.settings.client_id,
            instance_id=self.settings.group_instance_id,
            member_id=self._member_id(),
            metrics_url=url,
            topics=self.topics,
            started_at_ms=self._started_at_ms,
            announced_at_ms=int(time.time() * 1000),
            ttl_ms=int(self.interval * 3000) + _TTL_MARGIN_MS,
        )

    async def start(self) -> None:
        if not self.enabled or self._task is not None:
            return
        self._task = asyncio.create_task(self._run(), name="ktf-announcer")

    async def stop(self, flush_seconds: float = 2.0) -> None:
        """End the loop and write a tombstone (flushed for at most ``flush_seconds``)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        producer, self._producer = self._producer, None
        if producer is None:
            return
        loop = asyncio.get_running_loop()

        def tombstone() -> None:
            with contextlib.suppress(Exception):
                producer.produce(WORKERS_TOPIC, key=self._key, value=None)
                producer.flush(flush_seconds)

        await loop.run_in_executor(None, tombstone)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, self._ensure_topic)
            self._producer = await loop.run_in_executor(None, self._make_producer)
        except Exception as exc:
            self._warn("setup", "cannot announce on ktf.workers; ktf top will not find it", exc)
            return
        while True:
            try:
                value = self.current().encode()
                self._producer.produce(
                    WORKERS_TOPIC, key=self._key, value=value, on_delivery=self._delivered
                )
                self._producer.poll(0)
            except Exception as exc:
                self._warn("produce", "announcement not written", exc)
            await asyncio.sleep(self.interval)
            with contextlib.suppress(Exception):
                self._producer.poll(0)

    def _delivered(self, err: Any, _msg: Any) -> None:
        if err is None:
            self.delivered += 1
        else:
            self._warn("delivery", "announcement not delivered", err)

    def _make_producer(self) -> Any:
        from confluent_kafka import Producer

        conf = self.settings.librdkafka("producer")
        conf.update({"linger.ms": 0, "compression.type": "none", "enable.idempotence": False})
        conf["client.id"] = f"{self.settings.client_id}-announcer"
        return Producer(conf)

    def _ensure_topic(self) -> None:
        """Create ``ktf.workers`` when missing (``ktf topics ensure`` creates it too)."""
        from framework.kafka.admin import KafkaAdmin, TopicSpec

        admin = KafkaAdmin(self.settings)
        existing = admin.topic_partitions(timeout=10.0)
        if WORKERS_TOPIC in existing:
            return
        brokers = len(admin.client.list_topics(timeout=10.0).brokers) or 1
        rf = max(1, min(self.settings.topic_replication, brokers))
        admin.ensure_topics([TopicSpec(WORKERS_TOPIC, 1, rf, workers_topic_config())])

    def _warn(self, kind: str, what: str, exc: object) -> None:
        if kind in self._warned:
            return
        self._warned.add(kind)
        log.warning(what, topic=WORKERS_TOPIC, error=str(exc))


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
