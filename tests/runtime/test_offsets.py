"""OffsetTracker: the commit point never passes an unfinished record."""

from __future__ import annotations

import random

import pytest

from framework.runtime.offsets import OffsetTracker


def test_nothing_fetched_has_no_commit_point() -> None:
    t = OffsetTracker()
    assert t.commit_point() is None
    assert t.committable() is None


def test_out_of_order_completion_stops_at_first_unfinished() -> None:
    t = OffsetTracker()
    for off in range(10, 15):
        t.add(off)
    t.done(12)
    t.done(14)
    t.done(11)
    assert t.commit_point() == 10  # 10 still running
    t.done(10)
    assert t.commit_point() == 13  # 13 still running
    t.done(13)
    assert t.commit_point() == 15
    assert t.pending == 0


def test_gaps_in_offsets_are_skipped_not_waited_for() -> None:
    # Compaction / transaction markers leave holes: 1, 2, 5, 9 are what was fetched.
    t = OffsetTracker()
    for off in (1, 2, 5, 9):
        t.add(off)
    t.done(1)
    t.done(2)
    assert t.commit_point() == 5
    t.done(9)
    assert t.commit_point() == 5
    t.done(5)
    assert t.commit_point() == 10


def test_committable_reports_only_movement() -> None:
    t = OffsetTracker()
    t.add(0)
    t.add(1)
    assert t.committable() == 0
    t.mark_committed(0)
    assert t.committable() is None
    t.done(0)
    assert t.committable() == 1


def test_offsets_going_backwards_are_refused() -> None:
    t = OffsetTracker()
    t.add(5)
    with pytest.raises(ValueError, match="offset 4 fetched after 5"):
        t.add(4)


def test_reset_forgets_everything() -> None:
    t = OffsetTracker()
    t.add(3)
    t.mark_committed(3)
    t.reset()
    assert t.commit_point() is None
    t.add(1)  # a seek back is allowed after reset
    assert t.committable() == 1


@pytest.mark.parametrize("seed", range(20))
def test_random_completion_order_matches_naive_model(seed: int) -> None:
    rng = random.Random(seed)
    t = OffsetTracker()
    fetched: list[int] = []
    finished: set[int] = set()
    unfinished: list[int] = []
    nxt = rng.randint(0, 1000)
    for _ in range(3000):
        if rng.random() < 0.55:
            nxt += 1 if rng.random() < 0.9 else rng.randint(2, 5)  # occasional gaps
            t.add(nxt)
            fetched.append(nxt)
            unfinished.append(nxt)
        elif unfinished:
            off = unfinished.pop(rng.randrange(len(unfinished)))
            t.done(off)
            finished.add(off)
        # Naive model: first fetched offset not finished, else one past the last fetched.
        expected = next((o for o in fetched if o not in finished), None)
        if expected is None:
            expected = fetched[-1] + 1 if fetched else None
        assert t.commit_point() == expected
        if expected is not None and unfinished:
            assert expected <= min(unfinished)
