"""Retry policies: how often and how late a failed task is tried again."""

from __future__ import annotations

import re
from dataclasses import dataclass

from framework.errors import ConfigError

_DELAY = re.compile(r"^(\d+)(ms|s|m|h)$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_delay(tier: str) -> float:
    """Seconds of a tier name such as ``"5s"``, ``"1m"`` or ``"500ms"``."""
    match = _DELAY.match(tier)
    if match is None:
        raise ConfigError(f"retry tier {tier!r} is not a delay like 500ms, 5s, 1m or 2h")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


@dataclass(frozen=True)
class RetryPolicy:
    """How a handler's retriable failures are retried.

    ``attempts`` quick in-process attempts (tenacity backoff from ``backoff`` up to
    ``max_backoff`` seconds) come first; then the record travels through the
    non-blocking retry ``tiers`` (topics ``<topic>.retry.<tier>``), one attempt per
    tier, before it lands on the dead-letter topic. The default policy does not
    retry: a failure goes straight to the dead-letter topic.
    """

    attempts: int = 1
    backoff: float = 0.1
    max_backoff: float = 2.0
    tiers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ConfigError(f"RetryPolicy.attempts must be >= 1, got {self.attempts}")
        if self.backoff < 0 or self.max_backoff < self.backoff:
            raise ConfigError("RetryPolicy needs 0 <= backoff <= max_backoff")
        delays = [parse_delay(t) for t in self.tiers]
        if delays != sorted(delays):
            raise ConfigError(f"RetryPolicy.tiers must be in increasing delay order: {self.tiers}")

    @property
    def max_attempts(self) -> int:
        """Deliveries a task gets before it is dead-lettered (first + one per tier)."""
        return 1 + len(self.tiers)

    def tier_delays(self) -> list[float]:
        return [parse_delay(t) for t in self.tiers]
