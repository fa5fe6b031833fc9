"""Telling retry and delay tiers from task topics by name.

Lag on a retry tier is not work a new pod could pick up: its records run when
their ``ktf-not-before`` comes, not when capacity grows. Operations tools (``ktf
lag``, ``ktf top``, ``ktf_consumer_lag``) therefore report it apart, as retry
backlog. The check is by name, so it works without the handlers loaded: a tier
topic is ``<task topic>.retry.<delay>`` where ``<delay>`` is a tier delay such as
``30s``, ``5m`` or ``500ms``. Delay tiers of delayed tasks (``<task
topic>.delay.<delay>``, framework.scheduling.delay) hold records that are not due
either, and are reported apart the same way, as delay backlog.
"""

from __future__ import annotations

import re

__all__ = ["is_retry_tier", "is_waiting_tier", "split_retry_tier", "split_waiting_tier"]

_TIER = re.compile(r"^(?P<topic>.+)\.retry\.(?P<tier>\d+(?:ms|s|m|h|d))$")
_WAITING = re.compile(r"^(?P<topic>.+)\.(?P<kind>retry|delay)\.(?P<tier>\d+(?:ms|s|m|h|d))$")


def split_retry_tier(topic: str) -> tuple[str, str] | None:
    """``(task topic, tier)`` of a retry-tier topic, or None for any other topic."""
    match = _TIER.match(topic)
    if match is None:
        return None
    return match.group("topic"), match.group("tier")


def is_retry_tier(topic: str) -> bool:
    """Whether ``topic`` is named like a retry tier (``<topic>.retry.<delay>``)."""
    return _TIER.match(topic) is not None


def split_waiting_tier(topic: str) -> tuple[str, str, str] | None:
    """``(task topic, "retry" | "delay", tier)`` of a tier topic, or None."""
    match = _WAITING.match(topic)
    if match is None:
        return None
    return match.group("topic"), match.group("kind"), match.group("tier")


def is_waiting_tier(topic: str) -> bool:
    """Whether ``topic`` holds records until they are due (a retry or delay tier)."""
    return _WAITING.match(topic) is not None
