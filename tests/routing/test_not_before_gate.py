"""NotBeforeGate: tier records never run early, stay in order and pause their partition."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from framework import headers as h
from framework.registry import handler, spec_of
from framework.routing.retry import NotBeforeGate
from framework.runtime.state import Envelope, PartitionState


@handler(topic="tasks.g", schema="ktf.examples.WordCountTask")
async def _fn(t: Any, ctx: Any) -> None:
    return None


SPEC = spec_of(_fn)


def _env(state: PartitionState, offset: int, not_before_ms: int | None) -> Envelope:
    headers = [] if not_before_ms is None else [(h.NOT_BEFORE, str(not_before_ms).encode())]
    assert SPEC is not None
    return Envelope(state, SPEC, offset, None, b"", headers, 0)


def test_due_records_pass_and_later_ones_are_held_in_order_until_due() -> None:
    async def main() -> None:
        ran: list[tuple[int, float]] = []
        gate = NotBeforeGate(
            lambda e: ran.append((e.offset, time.time())), asyncio.get_running_loop()
        )
        state = PartitionState("tasks.g.retry.1s", 0)
        now = int(time.time() * 1000)
        gate.offer(_env(state, 0, now - 10))  # due
        gate.offer(_env(state, 1, None))  # no header: due
        assert [o for o, _ in ran] == [0, 1] and not state.not_before_paused
        gate.offer(_env(state, 2, now + 150))
        gate.offer(_env(state, 3, now + 50))  # due earlier, but behind offset 2
        gate.offer(_env(state, 4, now + 300))
        assert state.not_before_paused and gate.held == 3
        await asyncio.sleep(0.2)
        assert [o for o, _ in ran] == [0, 1, 2, 3]
        assert ran[2][1] * 1000 >= now + 150
        assert state.not_before_paused  # offset 4 still waits
        await asyncio.sleep(0.2)
        assert [o for o, _ in ran] == [0, 1, 2, 3, 4]
        assert ran[4][1] * 1000 >= now + 300
        assert not state.not_before_paused and gate.held == 0

    asyncio.run(main())


def test_partitions_are_independent_and_revoked_ones_are_dropped() -> None:
    async def main() -> None:
        ran: list[str] = []
        gate = NotBeforeGate(lambda e: ran.append(e.where), asyncio.get_running_loop())
        a, b = PartitionState("t.retry.1s", 0), PartitionState("t.retry.1s", 1)
        now = int(time.time() * 1000)
        gate.offer(_env(a, 0, now + 60_000))
        gate.offer(_env(b, 0, now - 1))
        assert ran == ["t.retry.1s[1]@0"] and a.not_before_paused and not b.not_before_paused
        c = PartitionState("t.retry.1s", 2)
        gate.offer(_env(c, 5, now + 50))
        c.revoked = True
        await asyncio.sleep(0.1)
        assert ran == ["t.retry.1s[1]@0"]  # c's record belongs to its new owner now
        gate.close()

    asyncio.run(main())


def test_a_timer_firing_early_is_rescheduled_not_obeyed() -> None:
    async def main() -> None:
        fake_now = [1_000.0]
        ran: list[int] = []
        gate = NotBeforeGate(
            lambda e: ran.append(e.offset), asyncio.get_running_loop(), clock=lambda: fake_now[0]
        )
        state = PartitionState("t.retry.1s", 0)
        gate.offer(_env(state, 0, 1_000_000 + 20))  # due 20 ms after the fake now
        await asyncio.sleep(0.06)  # the loop timer fired, but the fake clock did not move
        assert ran == []
        fake_now[0] = 1_000.05
        await asyncio.sleep(0.05)
        assert ran == [0]
        gate.close()

    asyncio.run(main())
