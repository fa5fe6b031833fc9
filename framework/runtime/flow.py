"""Backpressure: which partitions to pause and resume.

A partition is paused when its buffer (records fetched and not finished, or
finished but still above the commit point because an earlier record is running)
reaches the high watermark, and resumed when it falls to the low watermark; the gap
stops pause/resume flapping. A global cap pauses every partition while the worker as a
whole holds ``max_buffered`` records, and releases them at three quarters of it,
so memory is bounded whatever the topics hold. The consumer keeps polling while
paused, so a slow handler never costs the member its place in the group.

Memory bound (records): max_buffered + batch_size (one fetched batch beyond the
cap), plus librdkafka's prefetch: at most ``queued.max.messages.kbytes`` KiB, and
per partition ``max.partition.fetch.bytes`` (see docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Iterable

from framework.config import Settings
from framework.kafka.consumer import TP
from framework.runtime.state import PartitionState


class FlowControl:
    """Decides pause/resume from buffer counts; applies nothing itself."""

    def __init__(self, settings: Settings) -> None:
        self.high = settings.partition_buffer_high
        self.low = settings.partition_buffer_low
        self.global_high = settings.max_buffered
        self.global_low = max(0, settings.max_buffered * 3 // 4)
        self.global_paused = False

    def decide(
        self, states: Iterable[PartitionState], *, exempt: int = 0
    ) -> tuple[list[TP], list[TP]]:
        """Partitions to pause and to resume now; updates each state's ``paused`` flag.

        ``exempt`` records are left out of the global total: retry records held
        until due are bounded by their own partition's pause, and counting them
        would stall fresh tasks for as long as a tier's delay.
        """
        states = list(states)
        total = -exempt
        for s in states:
            total += s.buffered
        if self.global_paused:
            if total <= self.global_low:
                self.global_paused = False
        elif total >= self.global_high:
            self.global_paused = True
        pause: list[TP] = []
        resume: list[TP] = []
        high, low, global_paused = self.high, self.low, self.global_paused
        for s in states:
            if s.revoked:
                continue
            # Finished records waiting behind an unfinished one count too: they bound
            # how much a crash would re-run, not just how much memory is held.
            load = max(s.buffered, s.tracker.pending)
            # Hysteresis applies to the partition's own watermarks only, so lifting
            # the global cap resumes partitions that are below their high mark.
            s.local_paused = load > low if s.local_paused else load >= high
            want = global_paused or s.not_before_paused or s.local_paused
            if want != s.paused:
                s.paused = want
                (pause if want else resume).append(s.tp)
        return pause, resume
