"""Configuration of group-less readers (the control follower, the DLQ tools)."""

from __future__ import annotations

from typing import Any

from framework.config import Settings

# Group-membership properties: meaningless for assign(), and some are validated
# against each other (max.poll.interval.ms >= session.timeout.ms), so drop them all.
_GROUP_KEYS = (
    "partition.assignment.strategy",
    "session.timeout.ms",
    "max.poll.interval.ms",
    "group.instance.id",
    "group.protocol",
)


def reader_conf(settings: Settings, purpose: str) -> dict[str, Any]:
    """librdkafka config for a consumer that only ``assign()``s and never commits.

    The client insists on a ``group.id``; it is never joined (no ``subscribe``) and
    nothing is committed (auto commit is off in the consumer role).
    """
    conf = settings.librdkafka("consumer")
    for key in _GROUP_KEYS:
        conf.pop(key, None)
    conf["group.id"] = f"{settings.group_id}.ktf-{purpose}-reader"
    conf["client.id"] = f"{settings.client_id}-{purpose}"
    return conf
