"""Reading a partition's low and high watermarks, tolerant of a leader in transition.

Right after a topic is created, or a broker restarts, a partition can have no
leader (or the client's metadata is stale) for a moment: librdkafka answers
NOT_LEADER_FOR_PARTITION or LEADER_NOT_AVAILABLE. Those are retried with backoff
within the caller's timeout; anything else fails at once.
"""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import KafkaError as RdKafkaError
from confluent_kafka import KafkaException, TopicPartition

_TRANSIENT = frozenset(
    {
        RdKafkaError.NOT_LEADER_FOR_PARTITION,
        RdKafkaError.LEADER_NOT_AVAILABLE,
        RdKafkaError.UNKNOWN_TOPIC_OR_PART,
        RdKafkaError._TIMED_OUT,
    }
)


def _transient(exc: KafkaException) -> bool:
    err = exc.args[0] if exc.args else None
    if not isinstance(err, RdKafkaError):
        return False
    return err.code() in _TRANSIENT or bool(err.retriable())


def watermarks(consumer: Any, tp: TopicPartition, timeout: float) -> tuple[int, int]:
    """``(low, high)`` of ``tp``, retrying transient leader errors up to ``timeout`` s."""
    deadline = time.monotonic() + timeout
    delay = 0.1
    while True:
        remaining = deadline - time.monotonic()
        try:
            low, high = consumer.get_watermark_offsets(
                tp, timeout=max(0.5, remaining), cached=False
            )
            return int(low), int(high)
        except KafkaException as exc:
            if not _transient(exc) or remaining <= delay:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 1.0)
