"""Retry policies: how often and how late a failed task is tried again.

Error model (see docs/failures.md): whether a failure is worth another attempt is
carried by the exception type. Framework errors say it with their ``retriable``
attribute (``Retry`` and ``TaskTimeout`` are retriable; ``Reject``, ``DecodeError``
and ``TaskExpired`` are not). Any other exception is treated as transient, hence
retriable, unless the handler's policy lists its type in ``non_retriable``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from framework.errors import ConfigError, FrameworkError

_DELAY = re.compile(r"^(\d+)(ms|s|m|h|d)$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_delay(tier: str) -> float:
    """Seconds of a tier name such as ``"5s"``, ``"1m"``, ``"500ms"`` or ``"1d"``."""
    match = _DELAY.match(tier)
    if match is None:
        raise ConfigError(f"retry tier {tier!r} is not a delay like 500ms, 5s, 1m, 2h or 1d")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


@dataclass(frozen=True)
class RetryPolicy:
    """How a handler's retriable failures are retried.

    ``attempts`` quick in-process attempts (tenacity backoff from ``backoff`` up to
    ``max_backoff`` seconds) come first; then the record travels through the
    non-blocking retry ``tiers`` (topics ``<topic>.retry.<tier>``), one delivery per
    tier, before it lands on the dead-letter topic. Each delivery (the first one and
    one per tier) gets up to ``attempts`` in-process attempts, so a task that always
    fails runs ``attempts * (1 + len(tiers))`` times. The default policy does not
    retry: a failure goes straight to the dead-letter topic.

    ``non_retriable``: exception types (besides framework errors, which carry their
    own ``retriable`` flag) that are permanent for this handler, e.g.
    ``(ValueError, KeyError)``; they skip every retry and go to the dead-letter topic.
    """

    attempts: int = 1
    backoff: float = 0.1
    max_backoff: float = 2.0
    tiers: tuple[str, ...] = ()
    non_retriable: tuple[type[BaseException], ...] = ()

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ConfigError(f"RetryPolicy.attempts must be >= 1, got {self.attempts}")
        if self.backoff < 0 or self.max_backoff < self.backoff:
            raise ConfigError("RetryPolicy needs 0 <= backoff <= max_backoff")
        delays = [parse_delay(t) for t in self.tiers]
        if delays != sorted(delays):
            raise ConfigError(f"RetryPolicy.tiers must be in increasing delay order: {self.tiers}")
        for kind in self.non_retriable:
            if not (isinstance(kind, type) and issubclass(kind, BaseException)):
                raise ConfigError(
                    f"RetryPolicy.non_retriable must hold exception types, got {kind!r}"
                )

    @property
    def max_attempts(self) -> int:
        """Deliveries a task gets before it is dead-lettered (first + one per tier)."""
        return 1 + len(self.tiers)

    def tier_delays(self) -> list[float]:
        return [parse_delay(t) for t in self.tiers]

    def is_retriable(self, exc: BaseException) -> bool:
        """Whether another attempt at the task may succeed after ``exc``."""
        if isinstance(exc, FrameworkError):
            return exc.retriable
        if self.non_retriable and isinstance(exc, self.non_retriable):
            return False
        return isinstance(exc, Exception)
