"""A thin, blocking wrapper over ``confluent_kafka.Consumer``.

Every method here may block; the runtime calls them from its single consumer
thread, never from the event loop. Errors are wrapped in :class:`KafkaError`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import confluent_kafka
import structlog
from confluent_kafka import KafkaException, TopicPartition

from framework.config import Settings
from framework.errors import KafkaError
from framework.kafka.logs import first_in_window

log = structlog.get_logger("framework.kafka.consumer")

TP = tuple[str, int]
RebalanceCallback = Callable[[list[TP]], None]


def consume_ready(
    consumer: confluent_kafka.Consumer, max_messages: int, timeout: float
) -> list[confluent_kafka.Message]:
    """Up to ``max_messages`` records, waiting only while none is queued.

    ``Consumer.consume(n, timeout)`` returns when it has ``n`` records or when
    ``timeout`` has passed, so under light load each record sits in the call for up
    to ``timeout``. Here: take what is queued without waiting; only when nothing is,
    block for the first record (up to ``timeout``), then top up with what arrived
    with it, again without waiting. Under load the first call returns full batches;
    when traffic is light a record is handed over as soon as it is fetched.
    Callbacks (rebalance, commit results, statistics) are served as in ``consume``.
    """
    messages = consumer.consume(max_messages, 0)
    if messages:
        return messages
    messages = consumer.consume(1, timeout)
    if messages and max_messages > 1:
        more = consumer.consume(max_messages - 1, 0)
        if more:
            messages.extend(more)
    return messages


class KafkaConsumer:
    """Consumer-group member with explicit offset commits and pause/resume."""

    def __init__(
        self,
        settings: Settings,
        *,
        on_assign: RebalanceCallback | None = None,
        on_revoke: RebalanceCallback | None = None,
        on_lost: RebalanceCallback | None = None,
        on_commit_result: Callable[[Exception | None, list[TP]], None] | None = None,
        on_stats: Callable[[str], None] | None = None,
        stats_interval_ms: int = 0,
    ) -> None:
        self._settings = settings
        self._on_assign = on_assign
        self._on_revoke = on_revoke
        self._on_lost = on_lost
        self._on_commit_result = on_commit_result
        self._on_stats = on_stats
        self._stats_interval_ms = stats_interval_ms
        self._consumer: confluent_kafka.Consumer | None = None

    @property
    def raw(self) -> confluent_kafka.Consumer:
        if self._consumer is None:
            raise KafkaError("consumer is not started")
        return self._consumer

    def start(self, topics: Sequence[str]) -> None:
        conf: dict[str, Any] = self._settings.librdkafka("consumer")
        conf["error_cb"] = self._error
        if self._on_commit_result is not None:
            conf["on_commit"] = self._committed
        if self._on_stats is not None and self._stats_interval_ms > 0:
            conf["stats_cb"] = self._on_stats
            conf["statistics.interval.ms"] = self._stats_interval_ms
        try:
            self._consumer = confluent_kafka.Consumer(conf)
            self._consumer.subscribe(
                list(topics),
                on_assign=self._assigned,
                on_revoke=self._revoked,
                on_lost=self._lost,
            )
        except KafkaException as exc:
            raise KafkaError(f"cannot subscribe to {', '.join(topics)}: {exc}") from exc

    # -- rebalance callbacks (run inside consume(), on the consumer thread) --------

    def _assigned(self, _c: Any, partitions: list[TopicPartition]) -> None:
        if self._on_assign is not None:
            self._on_assign([(p.topic, p.partition) for p in partitions])

    def _revoked(self, _c: Any, partitions: list[TopicPartition]) -> None:
        if self._on_revoke is not None:
            self._on_revoke([(p.topic, p.partition) for p in partitions])

    def _lost(self, _c: Any, partitions: list[TopicPartition]) -> None:
        if self._on_lost is not None:
            self._on_lost([(p.topic, p.partition) for p in partitions])

    def _committed(self, err: Any, partitions: list[TopicPartition]) -> None:
        assert self._on_commit_result is not None
        failed = err is not None or any(p.error is not None for p in partitions)
        exc: Exception | None = None
        if failed:
            detail = err or next(p.error for p in partitions if p.error is not None)
            exc = KafkaError(f"offset commit failed: {detail}")
        self._on_commit_result(exc, [(p.topic, p.partition) for p in partitions])

    def _error(self, err: confluent_kafka.KafkaError) -> None:
        # Transport errors (broker down) are retried by librdkafka; only log them.
        if err.fatal():
            log.error("kafka consumer fatal error", error=str(err))
        elif first_in_window(str(err)):
            # An unreachable broker reports on every reconnect; once per window is enough.
            log.warning("kafka consumer error", error=str(err))

    # -- the loop's operations -----------------------------------------------------

    def consume(self, max_messages: int, timeout: float) -> list[confluent_kafka.Message]:
        """Up to ``max_messages`` records; consumer errors are logged, not returned.

        librdkafka waits here until it has ``max_messages`` or ``timeout`` passed, so
        at low load every record waits up to ``timeout``: the fetch loop uses
        :meth:`consume_ready` instead.
        """
        try:
            messages = self.raw.consume(max_messages, timeout)
        except KafkaException as exc:
            raise KafkaError(f"consume failed: {exc}") from exc
        return self._checked(messages)

    def consume_ready(self, max_messages: int, timeout: float) -> list[confluent_kafka.Message]:
        """Like :meth:`consume`, but never waits for a batch to fill (see :func:`consume_ready`)."""
        try:
            messages = consume_ready(self.raw, max_messages, timeout)
        except KafkaException as exc:
            raise KafkaError(f"consume failed: {exc}") from exc
        return self._checked(messages)

    def _checked(self, messages: list[confluent_kafka.Message]) -> list[confluent_kafka.Message]:
        if not messages:
            return []
        good = []
        for msg in messages:
            err = msg.error()
            if err is None:
                good.append(msg)
            elif err.fatal():
                raise KafkaError(f"fatal consumer error: {err}")
            else:
                log.warning(
                    "consumer error", topic=msg.topic(), partition=msg.partition(), error=str(err)
                )
        return good

    def pause(self, partitions: Iterable[TP]) -> None:
        tps = [TopicPartition(t, p) for t, p in partitions]
        if tps:
            try:
                self.raw.pause(tps)
            except KafkaException as exc:
                log.warning("pause failed", error=str(exc))

    def resume(self, partitions: Iterable[TP]) -> None:
        tps = [TopicPartition(t, p) for t, p in partitions]
        if tps:
            try:
                self.raw.resume(tps)
            except KafkaException as exc:
                log.warning("resume failed", error=str(exc))

    def commit(self, offsets: Mapping[TP, int], *, asynchronous: bool) -> None:
        """Commit next-offsets-to-read per partition."""
        if not offsets:
            return
        tps = [TopicPartition(t, p, off) for (t, p), off in offsets.items()]
        try:
            if asynchronous:
                self.raw.commit(offsets=tps, asynchronous=True)
            else:
                self.raw.commit(offsets=tps, asynchronous=False)
        except KafkaException as exc:
            raise KafkaError(f"offset commit failed: {exc}") from exc

    def seek(self, topic: str, partition: int, offset: int) -> None:
        try:
            self.raw.seek(TopicPartition(topic, partition, offset))
        except KafkaException as exc:
            raise KafkaError(f"seek {topic}[{partition}]@{offset} failed: {exc}") from exc

    def assignment(self) -> list[TP]:
        return [(p.topic, p.partition) for p in self.raw.assignment()]

    def close(self) -> None:
        """Leave the group (revoke callbacks run first) and free the client."""
        if self._consumer is None:
            return
        try:
            self._consumer.close()
        except (KafkaException, RuntimeError) as exc:
            log.warning("consumer close failed", error=str(exc))
        finally:
            self._consumer = None
