"""FlowControl: per-partition watermarks with hysteresis, and the global cap."""

from __future__ import annotations

from framework.config import Settings
from framework.runtime.flow import FlowControl
from framework.runtime.state import PartitionState


def _flow(high: int = 10, low: int = 4, cap: int = 100) -> FlowControl:
    return FlowControl(
        Settings(partition_buffer_high=high, partition_buffer_low=low, max_buffered=cap)
    )


def _state(p: int, buffered: int) -> PartitionState:
    s = PartitionState("t", p)
    s.buffered = buffered
    return s


def test_partition_pauses_at_high_watermark() -> None:
    flow = _flow()
    s = _state(0, 9)
    assert flow.decide([s]) == ([], [])
    s.buffered = 10
    assert flow.decide([s]) == ([("t", 0)], [])
    assert s.paused
    # Already paused: no repeated pause call.
    assert flow.decide([s]) == ([], [])


def test_resume_waits_for_low_watermark_hysteresis() -> None:
    flow = _flow()
    s = _state(0, 10)
    flow.decide([s])
    for level in (9, 7, 5):
        s.buffered = level
        assert flow.decide([s]) == ([], []), f"resumed too early at {level}"
    s.buffered = 4
    assert flow.decide([s]) == ([], [("t", 0)])
    assert not s.paused
    # Between the watermarks again while running: stays running.
    s.buffered = 8
    assert flow.decide([s]) == ([], [])


def test_only_the_full_partition_pauses() -> None:
    flow = _flow()
    full, light = _state(0, 12), _state(1, 1)
    assert flow.decide([full, light]) == ([("t", 0)], [])
    assert not light.paused


def test_global_cap_pauses_everything_and_releases_at_three_quarters() -> None:
    flow = _flow(high=50, low=10, cap=100)
    states = [_state(p, 25) for p in range(4)]  # 100 total, each below its own high
    pause, resume = flow.decide(states)
    assert sorted(pause) == [("t", p) for p in range(4)] and resume == []
    for s in states:
        s.buffered = 20  # 80 total: above 75
    assert flow.decide(states) == ([], [])
    for s in states:
        s.buffered = 18  # 72 total: at or below 75, and each partition at/below... 18 > low
    pause, resume = flow.decide(states)
    # Global pause released: partitions below their own high watermark resume at
    # once (their own hysteresis only applies to pauses they caused).
    assert pause == [] and sorted(resume) == [("t", p) for p in range(4)]


def test_partition_over_its_own_high_stays_paused_when_the_global_cap_lifts() -> None:
    flow = _flow(high=30, low=10, cap=100)
    states = [_state(0, 40), _state(1, 30), _state(2, 20), _state(3, 10)]
    pause, _ = flow.decide(states)
    assert sorted(pause) == [("t", p) for p in range(4)]
    states[0].buffered, states[1].buffered = 25, 20  # total 75: cap lifts
    pause, resume = flow.decide(states)
    assert pause == []
    assert sorted(resume) == [("t", 2), ("t", 3)]
    states[0].buffered = 10
    states[1].buffered = 10
    assert sorted(flow.decide(states)[1]) == [("t", 0), ("t", 1)]


def test_finished_records_behind_an_unfinished_one_count_toward_the_watermark() -> None:
    flow = _flow(high=10, low=4)
    s = _state(0, 1)  # one record still running...
    for offset in range(12):
        s.tracker.add(offset)
    for offset in range(1, 12):
        s.tracker.done(offset)  # ...and eleven finished behind it
    assert s.tracker.pending == 12
    assert flow.decide([s]) == ([("t", 0)], [])
    s.tracker.done(0)
    s.buffered = 0
    assert flow.decide([s]) == ([], [("t", 0)])


def test_revoked_partitions_are_left_alone() -> None:
    flow = _flow()
    s = _state(0, 50)
    s.revoked = True
    assert flow.decide([s]) == ([], [])


def test_not_before_pause_holds_until_cleared() -> None:
    flow = _flow()
    s = _state(0, 0)
    s.not_before_paused = True
    assert flow.decide([s]) == ([("t", 0)], [])
    s.not_before_paused = False
    assert flow.decide([s]) == ([], [("t", 0)])


def test_records_held_for_retry_do_not_count_toward_the_global_cap() -> None:
    flow = _flow(high=1000, low=10, cap=100)
    held, fresh = _state(0, 90), _state(1, 20)
    held.not_before_paused = True
    pause, _ = flow.decide([held, fresh], exempt=90)
    assert pause == [("t", 0)]  # only the gate's own pause
    assert not fresh.paused
    pause, _ = flow.decide([held, fresh], exempt=0)
    assert pause == [("t", 1)]  # counted, the same records would pause everything
