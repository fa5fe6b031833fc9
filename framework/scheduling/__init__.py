"""Periodic and delayed tasks.

- ``@periodic(every="30s" | cron="0 3 * * *", tz=..., topic=...)`` (or a
  :class:`Schedule` object, or a ``[[ktf.schedules]]`` config entry): one leader per
  worker group, elected through Kafka, fires each window once (docs/scheduling.md);
- ``submit(..., delay=)`` / ``run_at=``: the task waits in delay tiers
  ``<topic>.delay.<tier>`` without holding up the topic's other tasks.
"""

from framework.scheduling.delay import DELAY_TIERS, MAX_DELAY, RUN_AT, delay_topics
from framework.scheduling.schedule import Schedule, periodic

__all__ = ["DELAY_TIERS", "MAX_DELAY", "RUN_AT", "Schedule", "delay_topics", "periodic"]
