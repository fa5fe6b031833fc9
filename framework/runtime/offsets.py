"""Which offset of a partition is safe to commit.

Records finish out of order inside the pool. The commit point of a partition is
the offset just after the longest prefix of *fetched* records that are all
finished; it never passes an unfinished record. Offsets are tracked in fetch
order rather than by arithmetic, so gaps (compacted records, transaction markers)
are handled without special cases.
"""

from __future__ import annotations

from collections import deque


class OffsetTracker:
    """Per-partition completion tracking; all operations are amortised O(1)."""

    __slots__ = ("_done", "_last_committed", "_order", "_position")

    def __init__(self) -> None:
        # Offsets in fetch order that are not yet below the commit point.
        self._order: deque[int] = deque()
        # Offsets finished but not yet below the commit point.
        self._done: set[int] = set()
        # Next offset to read after the last fetched one; None before any fetch.
        self._position: int | None = None
        self._last_committed: int | None = None

    def add(self, offset: int) -> None:
        """Register a fetched record (offsets must arrive in increasing order)."""
        if self._position is not None and offset < self._position:
            raise ValueError(
                f"offset {offset} fetched after {self._position - 1}: offsets must increase"
            )
        self._order.append(offset)
        self._position = offset + 1

    def done(self, offset: int) -> None:
        """Mark a fetched record finished."""
        order = self._order
        if order and order[0] == offset:
            order.popleft()
            done = self._done
            while order and order[0] in done:
                done.discard(order.popleft())
        else:
            self._done.add(offset)

    @property
    def pending(self) -> int:
        """Fetched records at or above the commit point (finished or not)."""
        return len(self._order)

    def commit_point(self) -> int | None:
        """The offset to commit (next to read), or None if nothing was fetched."""
        if self._order:
            first = self._order[0]
            # Nothing below `first` is pending, so everything before it is finished.
            return first if self._position is not None else None
        return self._position

    def committable(self) -> int | None:
        """The commit point if it moved since the last :meth:`mark_committed`."""
        point = self.commit_point()
        if point is None or point == self._last_committed:
            return None
        return point

    def mark_committed(self, offset: int) -> None:
        self._last_committed = offset

    def reset(self) -> None:
        """Forget everything (after a seek or re-assignment)."""
        self._order.clear()
        self._done.clear()
        self._position = None
        self._last_committed = None
