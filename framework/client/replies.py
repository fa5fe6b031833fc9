"""Following a reply topic without a consumer group, for many concurrent calls.

One consumer, on its own thread, is *assigned* every partition of the reply topic at
the end offsets read when the listener starts, so no reply to a call made after
:meth:`ReplyListener.start` can be missed, and no group membership, rebalance or
commit is involved. Each call registers a future under its correlation id before
its task is produced; the thread hands the replies of pending calls to the event
loop in one callback per fetched batch and drops every other reply (other callers
sharing the topic, or calls that already timed out).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import confluent_kafka
import structlog
from confluent_kafka import KafkaException, TopicPartition

from framework import headers as h
from framework.errors import KafkaError
from framework.kafka.watermarks import watermarks

log = structlog.get_logger("framework.client")

_BATCH = 1_000
_POLL_TIMEOUT = 0.1


@dataclass(frozen=True)
class Reply:
    """One reply record.

    ``status`` is ``ok``, ``error``, ``expired`` or ``cancelled``; ``result`` the value
    decoded with the handler's result schema when the client knows it (else None,
    and ``value`` has the raw bytes); ``headers`` all headers as strings.
    """

    status: str
    task_id: str
    correlation_id: str
    result: Any
    value: bytes | None
    headers: dict[str, str] = field(repr=False)
    topic: str = ""
    partition: int = -1
    offset: int = -1

    @property
    def ok(self) -> bool:
        return self.status == h.STATUS_OK

    @property
    def error_type(self) -> str | None:
        return self.headers.get(h.ERROR_TYPE)

    @property
    def error_message(self) -> str | None:
        return self.headers.get(h.ERROR_MESSAGE)


def _correlation(msg: Any) -> str | None:
    hdrs = msg.headers()
    if not hdrs:
        return None
    for name, value in hdrs:
        if name == h.CORRELATION_ID and value is not None:
            return bytes(value).decode("utf-8", "replace")
    return None


def to_reply(msg: Any, result: Any = None) -> Reply:
    """A :class:`Reply` from a confluent-kafka message (``result`` already decoded)."""
    hdrs = h.to_dict(msg.headers())
    return Reply(
        status=hdrs.get(h.STATUS, ""),
        task_id=hdrs.get(h.TASK_ID, ""),
        correlation_id=hdrs.get(h.CORRELATION_ID, ""),
        result=result,
        value=msg.value(),
        headers=hdrs,
        topic=msg.topic(),
        partition=msg.partition(),
        offset=msg.offset(),
    )


class ReplyListener:
    """The consume thread of one reply topic and the table of pending calls."""

    def __init__(self, conf: dict[str, Any], topic: str) -> None:
        self._conf = conf
        self.topic = topic
        self._consumer: confluent_kafka.Consumer | None = None
        self._thread: threading.Thread | None = None
        self._running = False
        self._loop: asyncio.AbstractEventLoop | None = None
        #: correlation id -> future of the raw message; read by the thread (GIL-safe
        #: dict lookups), written only on the loop.
        self._pending: dict[str, asyncio.Future[Any]] = {}
        #: replies seen that belonged to no pending call (other callers, late replies)
        self.ignored = 0
        self.failure: BaseException | None = None

    @property
    def pending(self) -> int:
        return len(self._pending)

    def start(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        """Assign all partitions at their current end offsets, then start the thread.

        Blocking (metadata and offset requests bounded by ``timeout``): call it from
        an executor thread.
        """
        self._loop = loop
        try:
            consumer = confluent_kafka.Consumer(self._conf)
        except KafkaException as exc:
            raise KafkaError(f"cannot create the reply consumer: {exc}") from exc
        try:
            meta = _reply_topic_metadata(consumer, self.topic, timeout)
            assignment = []
            for partition in sorted(meta.partitions):
                _low, high = watermarks(consumer, TopicPartition(self.topic, partition), timeout)
                # An explicit offset, not OFFSET_END: "end" would be resolved only at
                # the first fetch, after which a reply produced in between is lost.
                assignment.append(TopicPartition(self.topic, partition, high))
            consumer.assign(assignment)
        except KafkaException as exc:
            consumer.close()
            raise KafkaError(f"cannot assign reply topic {self.topic!r}: {exc}") from exc
        except BaseException:
            consumer.close()
            raise
        self._consumer = consumer
        self._running = True
        self._thread = threading.Thread(
            target=self._run, name=f"ktf-replies-{self.topic}", daemon=True
        )
        self._thread.start()

    def expect(self, correlation_id: str) -> asyncio.Future[Any]:
        """Register a call (on the loop) before its task is produced."""
        assert self._loop is not None
        if self.failure is not None:
            raise KafkaError(f"reply consumer of {self.topic!r} failed: {self.failure}")
        fut: asyncio.Future[Any] = self._loop.create_future()
        self._pending[correlation_id] = fut
        return fut

    def forget(self, correlation_id: str) -> None:
        """Drop a call that timed out or was cancelled (on the loop)."""
        self._pending.pop(correlation_id, None)

    def _run(self) -> None:
        consumer = self._consumer
        loop = self._loop
        assert consumer is not None and loop is not None
        pending = self._pending
        while self._running:
            try:
                messages = consumer.consume(_BATCH, _POLL_TIMEOUT)
            except (KafkaException, RuntimeError) as exc:
                if self._stop_requested():
                    return
                self._fail(KafkaError(f"reply consumer of {self.topic!r} failed: {exc}"))
                return
            mine = []
            for msg in messages:
                err = msg.error()
                if err is not None:
                    if err.fatal():
                        self._fail(KafkaError(f"reply consumer of {self.topic!r}: {err}"))
                        return
                    log.warning("reply consumer error", topic=self.topic, error=str(err))
                    continue
                corr = _correlation(msg)
                if corr is not None and corr in pending:
                    mine.append((corr, msg))
                else:
                    self.ignored += 1
            if mine:
                try:
                    loop.call_soon_threadsafe(self._deliver, mine)
                except RuntimeError:  # the loop is closed: nobody is waiting any more
                    return

    def _stop_requested(self) -> bool:
        return not self._running

    def _deliver(self, batch: list[tuple[str, Any]]) -> None:
        pending = self._pending
        for corr, msg in batch:
            fut = pending.pop(corr, None)
            if fut is not None and not fut.done():
                fut.set_result(msg)

    def _fail(self, exc: BaseException) -> None:
        self.failure = exc
        log.error("reply consumer stopped", topic=self.topic, error=str(exc))
        assert self._loop is not None
        # A closed loop means nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._fail_all, exc)

    def _fail_all(self, exc: BaseException) -> None:
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(exc)

    def stop(self, on_pending: Callable[[], BaseException]) -> None:
        """Stop the thread, close the consumer, fail calls still waiting (on the loop)."""
        self._running = False
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        if self._consumer is not None:
            try:
                self._consumer.close()
            except (KafkaException, RuntimeError) as exc:
                log.warning("reply consumer close failed", error=str(exc))
            self._consumer = None
        if self._pending and self._loop is not None:
            # stop() runs on an executor thread; futures belong to the loop.
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._fail_all, on_pending())


def _reply_topic_metadata(consumer: Any, topic: str, timeout: float) -> Any:
    """The topic's metadata, waiting (bounded) for a just-created topic to appear.

    A broker answers UNKNOWN_TOPIC_OR_PART for a short while after the topic was
    created (its metadata cache lags the controller), so a client started right after
    ``ktf topics ensure`` would otherwise fail for no reason.
    """
    deadline = time.monotonic() + timeout
    while True:
        left = max(0.1, deadline - time.monotonic())
        md = consumer.list_topics(topic, timeout=left)
        meta = md.topics.get(topic)
        if meta is not None and meta.error is None and meta.partitions:
            return meta
        if time.monotonic() >= deadline:
            detail = meta.error if meta is not None else "not in metadata"
            raise KafkaError(
                f"reply topic {topic!r} is not available: {detail} "
                "(create it with `ktf topics ensure` or pass an existing reply topic)"
            )
        time.sleep(0.1)
