"""Cancellation across nodes: the ``ktf.control`` topic, its follower and its memory.

``ktf cancel TASK_ID`` and :func:`send_cancel` write a ``ktf.framework.Control``
record (schemas/framework/Control.avsc, plain Avro, key = task id) to
``ktf.control``. Every worker runs a :class:`ControlFollower`: a consumer thread
that *assigns* every partition of the topic (no group membership, no commits)
starting at ``now - window``, so a cancellation written shortly before the worker
started still counts. For each cancel the worker

- cancels the task if it runs here (its asyncio task; the runner replies
  ``cancelled``),
- remembers the id in a :class:`CancellationMemory`, so a queued copy is skipped
  when it comes up and one that arrives later is skipped too (reply ``cancelled``).

The memory is bounded: at most ``max_ids`` ids (oldest evicted first) and each for
``window`` seconds (default 1 hour, 100,000 ids: a few MiB). A task that arrives
after its cancellation left the memory runs normally.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import structlog
from confluent_kafka import OFFSET_END, Consumer, KafkaException, TopicPartition
from fastavro import parse_schema, schemaless_reader, schemaless_writer

from framework import headers as h
from framework.config import Settings
from framework.errors import DecodeError, KafkaError
from framework.kafka.consumer import consume_ready
from framework.kafka.producer import KafkaProducer
from framework.routing.reader import reader_conf

log = structlog.get_logger("framework.routing.control")

#: Must equal schemas/framework/Control.avsc (a test checks it); embedded so workers
#: and clients need no schemas directory to speak the control protocol.
CONTROL_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Control",
    "namespace": "ktf.framework",
    "fields": [
        {
            "name": "action",
            "type": {"type": "enum", "name": "ControlAction", "symbols": ["CANCEL"]},
        },
        {"name": "task_id", "type": "string"},
        {"name": "reason", "type": ["null", "string"], "default": None},
        {"name": "issued_at", "type": "long"},
        {"name": "issued_by", "type": ["null", "string"], "default": None},
    ],
}
_PARSED = parse_schema(CONTROL_SCHEMA)
#: The parsed control schema (for tools that decode ktf.control, e.g. `ktf tail`).
CONTROL_PARSED = _PARSED

ACTION_CANCEL = "CANCEL"
#: How far back a starting worker reads ``ktf.control``, and how long it remembers.
DEFAULT_WINDOW = 3600.0
DEFAULT_MAX_IDS = 100_000
_POLL = 0.1
_RETRY_METADATA = 5.0


def encode_control(action: str, task_id: str, reason: str | None = None) -> bytes:
    """A control record's bytes (plain Avro of :data:`CONTROL_SCHEMA`)."""
    out = io.BytesIO()
    schemaless_writer(
        out,
        _PARSED,
        {
            "action": action,
            "task_id": task_id,
            "reason": reason,
            "issued_at": int(time.time() * 1000),
            "issued_by": f"{socket.gethostname()}/{os.getpid()}",
        },
    )
    return out.getvalue()


def decode_control(data: bytes) -> dict[str, Any]:
    """The control record in ``data``; raises :class:`DecodeError` when it is not one."""
    buf = io.BytesIO(data)
    try:
        record = schemaless_reader(buf, _PARSED, None)
    except Exception as exc:
        raise DecodeError(f"{h.CONTROL_TOPIC}: not a ktf.framework.Control record: {exc}") from exc
    if buf.tell() != len(data) or not isinstance(record, dict):
        raise DecodeError(f"{h.CONTROL_TOPIC}: trailing bytes after a Control record")
    return record


def send_cancel(
    producer: KafkaProducer, task_id: str, reason: str | None = None, *, timeout: float = 10.0
) -> None:
    """Ask every worker to cancel ``task_id``; returns once the broker has the record."""
    if not task_id:
        raise ValueError("send_cancel needs a task id")
    errors: list[Any] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(err)

    producer.produce(
        h.CONTROL_TOPIC,
        encode_control(ACTION_CANCEL, task_id, reason),
        key=task_id.encode(),
        on_delivery=delivered,
    )
    if producer.flush(timeout) > 0:
        raise KafkaError(
            f"cancel of {task_id!r} not acknowledged by {h.CONTROL_TOPIC} in {timeout}s"
        )
    if errors:
        raise KafkaError(
            f"cancel of {task_id!r} could not be written to {h.CONTROL_TOPIC}: {errors[0]}"
        )


class CancellationMemory:
    """Recently cancelled task ids: at most ``max_ids``, each for ``window`` seconds."""

    def __init__(
        self,
        max_ids: int = DEFAULT_MAX_IDS,
        window: float = DEFAULT_WINDOW,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.max_ids = max_ids
        self.window = window
        self._clock = clock
        self._ids: OrderedDict[str, float] = OrderedDict()  # id -> expiry (epoch s)

    def add(self, task_id: str, at: float | None = None) -> None:
        """Remember a cancellation issued at ``at`` (epoch seconds; default now)."""
        expiry = (self._clock() if at is None else at) + self.window
        ids = self._ids
        ids[task_id] = max(expiry, ids.get(task_id, 0.0))
        ids.move_to_end(task_id)
        while len(ids) > self.max_ids:
            ids.popitem(last=False)

    def __contains__(self, task_id: object) -> bool:
        ids = self._ids
        if not ids:  # the hot path: nothing was ever cancelled
            return False
        expiry = ids.get(task_id)  # type: ignore[call-overload]
        if expiry is None:
            return False
        if expiry < self._clock():
            del ids[task_id]  # type: ignore[arg-type]
            return False
        return True

    def __len__(self) -> int:
        return len(self._ids)


class ControlFollower:
    """Reads ``ktf.control`` on its own thread and reports each command.

    ``on_command(record)`` is called on the follower thread; hand work over to the
    event loop from it. Nothing touches the network before :meth:`start`.
    """

    def __init__(
        self,
        settings: Settings,
        on_command: Callable[[dict[str, Any]], None],
        *,
        window: float = DEFAULT_WINDOW,
        topic: str = h.CONTROL_TOPIC,
    ) -> None:
        self._settings = settings
        self._on_command = on_command
        self._window = window
        self._topic = topic
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: set once the partitions are assigned (tests wait on it)
        self.ready = threading.Event()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ktf-control", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        try:
            consumer = Consumer(reader_conf(self._settings, "control"))
        except (KafkaException, ValueError) as exc:
            log.error("control follower cannot start", error=str(exc))
            return
        try:
            while not self._stop.is_set() and not self._assign(consumer):
                self._stop.wait(_RETRY_METADATA)
            while not self._stop.is_set():
                try:
                    messages = consume_ready(consumer, 100, _POLL)
                except KafkaException as exc:
                    log.warning("control consume failed", error=str(exc))
                    self._stop.wait(1.0)
                    continue
                for msg in messages:
                    value = msg.value()
                    if msg.error() is not None or value is None:
                        continue
                    try:
                        record = decode_control(value)
                    except DecodeError as exc:
                        log.warning("ignoring control record", offset=msg.offset(), error=str(exc))
                        continue
                    self._on_command(record)
        finally:
            with contextlib.suppress(KafkaException, RuntimeError):
                consumer.close()

    def _assign(self, consumer: Any) -> bool:
        """Assign every partition from ``now - window``; False if the topic is missing."""
        try:
            md = consumer.list_topics(self._topic, timeout=5.0)
            meta = md.topics.get(self._topic)
            if meta is None or meta.error is not None or not meta.partitions:
                log.warning("control topic not available yet", topic=self._topic)
                return False
            since = int((time.time() - self._window) * 1000)
            wanted = [TopicPartition(self._topic, p, since) for p in sorted(meta.partitions)]
            found = consumer.offsets_for_times(wanted, timeout=10.0)
        except KafkaException as exc:
            log.warning("control topic lookup failed", topic=self._topic, error=str(exc))
            return False
        start = [
            TopicPartition(self._topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_END)
            for tp in found
        ]
        consumer.assign(start)
        self.ready.set()
        log.info("following control topic", topic=self._topic, partitions=len(start))
        return True


class Cancellations:
    """A worker's side of cancellation: memory + follower, wired to the task runner."""

    def __init__(
        self,
        settings: Settings,
        cancel_running: Callable[[str], bool],
        loop: asyncio.AbstractEventLoop,
        *,
        window: float = DEFAULT_WINDOW,
        max_ids: int = DEFAULT_MAX_IDS,
    ) -> None:
        self.memory = CancellationMemory(max_ids, window)
        self._cancel_running = cancel_running
        self._loop = loop
        self.follower = ControlFollower(settings, self._from_thread, window=window)

    def is_cancelled(self, task_id: str) -> bool:
        return task_id in self.memory

    def start(self) -> None:
        self.follower.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.follower.stop(timeout)

    def _from_thread(self, record: dict[str, Any]) -> None:
        if record.get("action") != ACTION_CANCEL:
            return
        # RuntimeError: the loop is closed, the worker is gone.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self.cancel, record["task_id"], record)

    def cancel(self, task_id: str, record: dict[str, Any] | None = None) -> None:
        """Remember the cancellation and cancel the task if it runs here (event loop)."""
        at = record["issued_at"] / 1000.0 if record else None
        self.memory.add(task_id, at)
        # Only while remembered: the runner tells a cancel from a shutdown by the memory.
        if task_id in self.memory and self._cancel_running(task_id):
            log.info("cancelled running task", task_id=task_id, reason=(record or {}).get("reason"))
