"""A thin wrapper over ``confluent_kafka.Producer`` with a background poll thread.

Delivery reports are served by a daemon thread calling ``poll()``, so callers on
the event loop never block on them; the callbacks therefore run on that thread and
must only hand results over (e.g. append to a deque).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import confluent_kafka
import structlog
from confluent_kafka import KafkaException

from framework.config import ProducerPurpose, Settings
from framework.errors import KafkaError
from framework.kafka.logs import first_in_window

log = structlog.get_logger("framework.kafka.producer")

DeliveryCallback = Callable[[Any, Any], None]
HeaderList = list[tuple[str, bytes]]


class KafkaProducer:
    """Idempotent producer; ``produce`` never blocks for long (bounded wait on a full queue)."""

    def __init__(
        self,
        settings: Settings,
        *,
        extra: dict[str, Any] | None = None,
        queue_full_timeout: float = 30.0,
        purpose: ProducerPurpose = "submits",
    ) -> None:
        self._settings = settings
        #: what this producer writes; decides its linger.ms (Settings.linger_ms)
        self.purpose: ProducerPurpose = purpose
        self._extra = extra or {}
        self._queue_full_timeout = queue_full_timeout
        self._producer: confluent_kafka.Producer | None = None
        self._thread: threading.Thread | None = None
        self._running = False

    @property
    def raw(self) -> confluent_kafka.Producer:
        if self._producer is None:
            raise KafkaError("producer is not started")
        return self._producer

    def start(self, *, poll_thread: bool = True) -> None:
        conf = self._settings.librdkafka("producer", purpose=self.purpose)
        conf.update(self._extra)
        conf["error_cb"] = self._error
        try:
            self._producer = confluent_kafka.Producer(conf)
        except KafkaException as exc:
            raise KafkaError(f"cannot create producer: {exc}") from exc
        if poll_thread:
            self._running = True
            self._thread = threading.Thread(
                target=self._poll_loop, name="ktf-producer-poll", daemon=True
            )
            self._thread.start()

    def _poll_loop(self) -> None:
        producer = self._producer
        assert producer is not None
        while self._running:
            producer.poll(0.05)

    def _error(self, err: confluent_kafka.KafkaError) -> None:
        if err.fatal():
            log.error("kafka producer fatal error", error=str(err))
        elif first_in_window(str(err)):
            # An unreachable broker reports on every reconnect; once per window is enough.
            log.warning("kafka producer error", error=str(err))

    def produce(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | str | None = None,
        headers: HeaderList | None = None,
        on_delivery: DeliveryCallback | None = None,
        partition: int | None = None,
    ) -> None:
        """Queue a record; waits (bounded) while librdkafka's local queue is full."""
        producer = self.raw
        kwargs: dict[str, Any] = {"key": key, "headers": headers, "on_delivery": on_delivery}
        if partition is not None:
            kwargs["partition"] = partition
        deadline = 0.0
        while True:
            try:
                producer.produce(topic, value, **kwargs)
                return
            except BufferError as exc:
                now = time.monotonic()
                if not deadline:
                    deadline = now + self._queue_full_timeout
                elif now > deadline:
                    raise KafkaError(
                        f"producer queue stayed full for {self._queue_full_timeout:.0f}s "
                        f"producing to {topic!r}"
                    ) from exc
                # Serve delivery reports to make room (the poll thread may be busy).
                producer.poll(0.05)
            except KafkaException as exc:
                raise KafkaError(f"produce to {topic!r} failed: {exc}") from exc

    async def send(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | str | None = None,
        headers: HeaderList | None = None,
    ) -> None:
        """Produce one record and wait for the broker's acknowledgement.

        Raises :class:`KafkaError` naming the topic when the record is not delivered.
        """
        loop = asyncio.get_running_loop()
        acked: asyncio.Future[None] = loop.create_future()

        def delivered(err: Any, _msg: Any) -> None:
            loop.call_soon_threadsafe(_settle, acked, err, topic)

        self.produce(topic, value, key=key, headers=headers, on_delivery=delivered)
        await acked

    def poll(self, timeout: float = 0.0) -> int:
        return int(self.raw.poll(timeout))

    def flush(self, timeout: float) -> int:
        """Wait for outstanding deliveries; returns how many are still outstanding."""
        if self._producer is None:
            return 0
        return int(self._producer.flush(timeout))

    def close(self, timeout: float = 10.0) -> int:
        """Flush, stop the poll thread; returns records that could not be delivered."""
        remaining = self.flush(timeout)
        self._running = False
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            self._thread = None
        if remaining:
            log.error("producer closed with undelivered records", remaining=remaining)
        self._producer = None
        return remaining


def _settle(fut: asyncio.Future[None], err: Any, topic: str) -> None:
    if fut.done():
        return
    if err is None:
        fut.set_result(None)
    else:
        fut.set_exception(KafkaError(f"delivery to {topic!r} failed: {err}"))
