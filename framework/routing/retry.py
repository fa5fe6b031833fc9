"""Retry tiers: where a failed record goes next, and holding tier records until due.

A retriable failure sends the record (key and value bytes unchanged) to the next
tier topic ``<topic>.retry.<tier>`` with ``ktf-not-before`` = now + the tier's delay
(or the handler's ``Retry(delay=)`` when larger) and ``ktf-attempt`` + 1; after the
last tier it goes to ``<topic>.dlq``. Workers consume the tier topics with the task
topic and map them back to the handler (:func:`tier_map`).

Records in one tier partition are in due order (same delay, produced in time
order), so :class:`NotBeforeGate` only looks at the head: when it is not due, the
head and everything after it from that partition are held and the partition is
paused (``state.not_before_paused``) until the head is due (``loop.call_later``),
then released in order. Nothing runs early and nothing busy-waits. A record whose
``Retry(delay=)`` made it later than its successors holds them back (late, never
early). Held records were already received: librdkafka re-fetches a resumed
partition from the application's position, which is after them, so nothing is lost
or duplicated; their offsets stay uncommitted until they finish.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from framework import headers as h
from framework.routing.policy import parse_delay

if TYPE_CHECKING:
    from framework.registry import HandlerRegistry, HandlerSpec
    from framework.runtime.state import Envelope, PartitionState


class Hop(NamedTuple):
    """The next stop of a retried record."""

    topic: str
    tier: str
    not_before_ms: int


def tier_map(registry: HandlerRegistry) -> dict[str, HandlerSpec]:
    """Retry-tier topic -> the handler that consumes it."""
    out: dict[str, HandlerSpec] = {}
    for spec in registry.specs:
        for topic in spec.retry_topics():
            out[topic] = spec
    return out


def consumed_topics(registry: HandlerRegistry) -> list[str]:
    """Every topic a worker subscribes to: task topics and their retry tiers."""
    out = list(registry.topics)
    out.extend(t for t in tier_map(registry) if t not in out)
    return out


def tier_index(spec: HandlerSpec, topic: str, attempt: int) -> int:
    """Which tier ``topic`` is for ``spec`` (-1: the task topic itself).

    A tier no longer in the policy (configuration changed while records waited)
    falls back to the attempt count.
    """
    if topic == spec.topic:
        return -1
    prefix = f"{spec.topic}.retry."
    if topic.startswith(prefix):
        try:
            return spec.retry.tiers.index(topic[len(prefix) :])
        except ValueError:
            pass
    return max(-1, min(attempt - 2, len(spec.retry.tiers) - 1))


def next_hop(
    spec: HandlerSpec,
    topic: str,
    attempt: int,
    *,
    delay: float | None = None,
    now_ms: int | None = None,
) -> Hop | None:
    """The tier a record that failed on ``topic`` goes to, or None (dead-letter it)."""
    tiers = spec.retry.tiers
    nxt = tier_index(spec, topic, attempt) + 1
    if nxt >= len(tiers):
        return None
    tier = tiers[nxt]
    wait = parse_delay(tier)
    if delay is not None and delay > wait:
        wait = delay
    # Rounded up: the record must never become due before failure time + delay.
    now = math.ceil(time.time() * 1000) if now_ms is None else now_ms
    return Hop(h.retry_topic(spec.topic, tier), tier, now + math.ceil(wait * 1000))


def not_before_of(env: Envelope) -> int | None:
    """The record's ``ktf-not-before`` (epoch ms), or None when absent or malformed."""
    raw = env.header(h.NOT_BEFORE)
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        return None


class NotBeforeGate:
    """Holds retry-tier records until their ``ktf-not-before``; see the module docstring.

    ``submit`` hands a due record to the handler pool. Runs on the event loop only.
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
        self._held: dict[PartitionState, deque[tuple[int, Envelope]]] = {}
        self._timers: dict[PartitionState, asyncio.TimerHandle] = {}

    @property
    def held(self) -> int:
        """Records waiting for their not-before, over all partitions."""
        return sum(len(q) for q in self._held.values())

    def offer(self, env: Envelope) -> None:
        """Run ``env`` now if it is due and nothing before it waits; else hold it."""
        state = env.state
        queue = self._held.get(state)
        nb = not_before_of(env) or 0
        if queue is not None:
            queue.append((nb, env))
            return
        if nb <= self._clock() * 1000:
            self._submit(env)
            return
        self._held[state] = deque([(nb, env)])
        state.not_before_paused = True
        self._schedule(state, nb)

    def _schedule(self, state: PartitionState, nb: int) -> None:
        delay = max(0.0, nb / 1000.0 - self._clock())
        self._timers[state] = self._loop.call_later(delay, self._release, state)

    def _release(self, state: PartitionState) -> None:
        self._timers.pop(state, None)
        queue = self._held.get(state)
        if queue is None:
            return
        if state.revoked:
            # The partition's new owner re-reads these from the committed offset.
            del self._held[state]
            state.not_before_paused = False
            return
        now_ms = self._clock() * 1000
        while queue:
            nb, env = queue[0]
            if nb > now_ms:
                self._schedule(state, nb)
                return
            queue.popleft()
            self._submit(env)
        del self._held[state]
        state.not_before_paused = False

    def forget(self, states: list[PartitionState]) -> None:
        """Drop held records of revoked or lost partitions."""
        for state in states:
            timer = self._timers.pop(state, None)
            if timer is not None:
                timer.cancel()
            self._held.pop(state, None)
            state.not_before_paused = False

    def close(self) -> None:
        """Cancel every timer (the worker is stopping; held records stay uncommitted)."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._held.clear()
