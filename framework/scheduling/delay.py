"""Delayed tasks: delay tiers consumed by the workers, no timer per task.

A task record with ``ktf-not-before`` in the future (``submit(delay=)``, ``ktf send
--delay``, or any producer setting the header) is not run. The worker moves it, key
and value bytes unchanged, to the delay tier ``<topic>.delay.<tier>`` whose delay
is the largest not exceeding the time left (the smallest tier for less than that),
with

- ``ktf-run-at``: the task's own due time (the original ``ktf-not-before``);
- ``ktf-not-before``: when this hop ends, ``min(run-at, now + tier delay)``.

Records in a tier partition are appended in time order and all wait the same tier
delay, so their hop ends come in offset order: the not-before gate the retry tiers
use (hold the head, pause the partition, release in order) holds them with no
head-of-line blocking. When a hop ends the record goes through the runner again:
due (``ktf-run-at`` passed) -> it runs; cancelled meanwhile -> it is answered
``cancelled``; otherwise -> the next hop. The smallest tier (``1s``) mixes hop ends
(``now + 1s``) with due times (remainders under a second), so it is held in a
per-worker heap instead (one timer for the heap, at most about a second of delayed
traffic in memory) and releases in due order.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import heapq
import itertools
import math
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import structlog

from framework import headers as h
from framework.errors import ConfigError, FrameworkError
from framework.observability.tracing import TraceContext
from framework.routing.policy import parse_delay

if TYPE_CHECKING:
    from framework.registry import HandlerRegistry, HandlerSpec
    from framework.routing.router import Router
    from framework.runtime.state import Envelope

log = structlog.get_logger("framework.scheduling.delay")

#: The task's own due time (epoch ms) on delay-tier records.
RUN_AT = "ktf-run-at"
#: Delay tiers, smallest first: a topic ``<topic>.delay.<tier>`` each.
DELAY_TIERS: tuple[str, ...] = ("1s", "5s", "30s", "2m", "10m", "1h", "6h", "1d")
_TIER_MS: tuple[int, ...] = tuple(int(parse_delay(t) * 1000) for t in DELAY_TIERS)
#: The longest delay a task may ask for (seconds).
MAX_DELAY = 7 * 86_400.0
#: How long workers must remember a cancellation so a delayed task cancelled
#: before it is due never runs: the longest delay plus an hour of slack.
CANCEL_WINDOW = MAX_DELAY + 3_600.0

OUTCOME_DELAYED = "delayed"
OUTCOME_DEAD = "dead_lettered"
ERROR_NO_TIER = "NoDelayTier"


def delay_topic(topic: str, tier: str) -> str:
    return f"{topic}.delay.{tier}"


def delay_topics(topic: str) -> list[str]:
    """Every delay tier topic of a task topic, smallest tier first."""
    return [delay_topic(topic, tier) for tier in DELAY_TIERS]


def choose_tier(remaining_ms: int) -> int:
    """Index of the largest tier not exceeding ``remaining_ms`` (0 below the smallest)."""
    index = 0
    for i, tier_ms in enumerate(_TIER_MS):
        if tier_ms <= remaining_ms:
            index = i
    return index


def due_of(hdrs: Mapping[str, str]) -> int | None:
    """When the record may run (epoch ms): the later of ``ktf-not-before`` and
    ``ktf-run-at``; None when neither is a valid integer."""
    due: int | None = None
    for name in (h.NOT_BEFORE, RUN_AT):
        raw = hdrs.get(name)
        if raw:
            try:
                value = int(raw)
            except ValueError:
                continue
            due = value if due is None else max(due, value)
    return due


def not_before_ms(
    delay: float | dt.timedelta | None = None,
    run_at: dt.datetime | None = None,
    *,
    now: float | None = None,
) -> int | None:
    """The ``ktf-not-before`` of ``submit(delay=)`` / ``submit(run_at=)``, validated."""
    if delay is None and run_at is None:
        return None
    if delay is not None and run_at is not None:
        raise ConfigError("give delay= or run_at=, not both")
    current = time.time() if now is None else now
    if run_at is not None:
        if not isinstance(run_at, dt.datetime):
            raise ConfigError(f"run_at: expected a datetime, got {type(run_at).__name__}")
        seconds = run_at.timestamp() - current
    elif isinstance(delay, dt.timedelta):
        seconds = delay.total_seconds()
    elif isinstance(delay, int | float) and not isinstance(delay, bool):
        seconds = float(delay)
    else:
        raise ConfigError(f"delay: expected seconds or a timedelta, got {delay!r}")
    if run_at is None and seconds < 0:
        raise ConfigError(f"delay must be >= 0 seconds, got {seconds}")
    if seconds > MAX_DELAY:
        raise ConfigError(
            f"delay of {seconds:.0f}s is over the {MAX_DELAY / 86_400:.0f}-day maximum "
            "(workers remember cancellations that long)"
        )
    # Rounded up: never earlier than asked.
    return math.ceil((current + max(0.0, seconds)) * 1000)


class DueHeap:
    """Holds records of the smallest delay tier until ``ktf-not-before``, in due order.

    One timer for the whole heap. Event loop only. Records of a partition revoked
    meanwhile are dropped when they come up (the partition's new owner reads them
    again from the committed offset).
    """

    def __init__(
        self,
        submit: Callable[[Envelope], None],
        loop: asyncio.AbstractEventLoop,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._submit = submit
        self._loop = loop
        self._clock = clock
        self._heap: list[tuple[int, int, Envelope]] = []
        self._seq = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0

    @property
    def held(self) -> int:
        return len(self._heap)

    def offer(self, env: Envelope) -> None:
        raw = env.header(h.NOT_BEFORE)
        try:
            nb = int(raw) if raw else 0
        except ValueError:
            nb = 0
        if nb <= self._clock() * 1000:
            self._submit(env)
            return
        heapq.heappush(self._heap, (nb, next(self._seq), env))
        if self._timer is None or nb < self._timer_at:
            self._arm(nb)

    def _arm(self, at_ms: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at_ms
        self._timer = self._loop.call_later(max(0.0, at_ms / 1000.0 - self._clock()), self._release)

    def _release(self) -> None:
        self._timer = None
        heap = self._heap
        now_ms = self._clock() * 1000
        while heap and heap[0][0] <= now_ms:
            env = heapq.heappop(heap)[2]
            if not env.state.revoked:
                self._submit(env)
        if heap:
            self._arm(heap[0][0])

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._heap.clear()


class DelayTiers:
    """The worker's side of delayed tasks: which tier topics it consumes, and the
    runner's ``defer`` hook that moves a not-yet-due record to its next tier."""

    def __init__(self, registry: HandlerRegistry, router: Router, existing: set[str]) -> None:
        self._router = router
        #: delay tier topic -> (handler, tier index), for the tiers that exist
        self.tiers: dict[str, tuple[HandlerSpec, int]] = {}
        self._missing: dict[str, list[str]] = {}
        for spec in registry.specs:
            for index, topic in enumerate(delay_topics(spec.topic)):
                if topic in existing:
                    self.tiers[topic] = (spec, index)
                else:
                    self._missing.setdefault(spec.topic, []).append(topic)
        for topic, missing in self._missing.items():
            log.info(
                "delayed tasks of this topic will be dead-lettered: its delay tiers are "
                "missing (create them with `ktf topics ensure`)",
                topic=topic,
                missing=missing,
            )

    @property
    def topics(self) -> list[str]:
        return list(self.tiers)

    def defer(self, env: Envelope, hdrs: Mapping[str, str]) -> str | None:
        """Move ``env`` to its next delay tier if it is not due yet.

        Returns the outcome (``delayed``, or ``dead_lettered`` when the tier topic is
        missing) or None when the record is due and should run now.
        """
        due = due_of(hdrs)
        if due is None:
            return None
        # Floor: "due" must mean the clock has reached it, never a fraction before.
        now = int(time.time() * 1000)
        if due <= now:
            return None
        index = choose_tier(due - now)
        spec = env.spec
        topic = delay_topic(spec.topic, DELAY_TIERS[index])
        trace = TraceContext.from_headers(hdrs).child()
        if topic not in self.tiers:
            err = FrameworkError(
                f"task {hdrs.get(h.TASK_ID, env.where)} is delayed until {due} but the delay "
                f"tier {topic!r} does not exist (create it with `ktf topics ensure`)"
            )
            self._router.dead_letter(env, err, error_type=ERROR_NO_TIER, trace=trace)
            self._router.reply(
                env, status=h.STATUS_ERROR, value=None, trace=trace, error=err,
                error_type=ERROR_NO_TIER,
            )  # fmt: skip
            return OUTCOME_DEAD
        extra = {h.NOT_BEFORE: str(min(due, now + _TIER_MS[index])), RUN_AT: str(due)}
        self._router.forward(env, topic, extra, trace)
        return OUTCOME_DELAYED
