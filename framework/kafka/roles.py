"""A worker's producers by what they write.

Outcomes (replies, retry-tier records, dead letters) and sub-tasks may want
different ``linger.ms`` (Settings.outcome_linger_ms / subtask_linger_ms): a
librdkafka producer has one linger for every topic, so sub-tasks get a producer of
their own only when the two settings differ; otherwise they share one.
"""

from __future__ import annotations

import time

from framework.config import Settings
from framework.kafka.producer import KafkaProducer


class WorkerProducers:
    """The outcome producer, and the sub-task producer (the same one unless configured apart)."""

    def __init__(self, settings: Settings) -> None:
        self.outcomes = KafkaProducer(settings, purpose="outcomes")
        self.subtasks = (
            self.outcomes
            if settings.subtask_linger_ms == settings.outcome_linger_ms
            else KafkaProducer(settings, purpose="subtasks")
        )

    def start(self) -> None:
        self.outcomes.start()
        if self.subtasks is not self.outcomes:
            self.subtasks.start()

    def close(self, timeout: float) -> int:
        """Flush and close both (sub-tasks first); records that could not be delivered."""
        remaining = 0
        deadline = time.monotonic() + timeout
        if self.subtasks is not self.outcomes:
            remaining += self.subtasks.close(timeout)
        return remaining + self.outcomes.close(max(0.1, deadline - time.monotonic()))
