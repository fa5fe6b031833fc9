"""One ``/metrics`` for a pod of worker processes: the children's expositions, merged.

Why not prometheus-client's multiprocess mode: the worker's per-task metrics are
plain numbers exposed by a custom collector at scrape time (a lock-free hot path,
see observability/metrics.py), and multiprocess mode covers only the library's own
Counter/Gauge/Histogram objects backed by mmap files, not custom collectors; it
would put a file write on the per-task path and need the files cleaned when a
child dies. Instead each child serves its own registry on a loopback port and the
supervisor merges what they serve, when it is scraped:

- counters, histograms and summaries are summed per series (same name and labels);
- gauges are summed (in-flight tasks, buffered records, paused partitions add up)
  except those in :data:`MAX_GAUGES`, where the pod's value is the worst child's
  (a lag, an age, a leader flag or epoch: adding them would mean nothing);
- ``*_created`` samples take the earliest.

A child that exits leaves its last scraped counters behind (:class:`Carried`), so
a pod total never goes backwards when a child is restarted and starts from zero
(the last snapshot is at most one refresh interval old: counts a crashed child
made after it are not in the total).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["MAX_GAUGES", "Carried", "merge_expositions"]

#: Gauges whose pod value is the largest child value rather than the sum.
MAX_GAUGES = frozenset(
    {
        "ktf_consumer_lag",
        "ktf_event_loop_lag_seconds",
        "ktf_oldest_unfinished_age_seconds",
        "ktf_leader",
        "ktf_leader_epoch",
        "ktf_schedule_lag_seconds",
    }
)
_CUMULATIVE = frozenset({"counter", "histogram", "summary", "gaugehistogram"})

SeriesKey = tuple[str, tuple[tuple[str, str], ...]]


@dataclass
class _Family:
    name: str
    type: str
    documentation: str
    values: dict[SeriesKey, float] = field(default_factory=dict)

    def add(self, key: SeriesKey, value: float) -> None:
        old = self.values.get(key)
        if old is None:
            self.values[key] = value
        elif key[0].endswith("_created"):
            self.values[key] = min(old, value)
        elif self.type == "gauge" and self.name in MAX_GAUGES:
            self.values[key] = max(old, value)
        else:
            self.values[key] = old + value

    def metric(self) -> Metric:
        out = Metric(self.name, self.documentation, self.type)
        for (sample, labels), value in sorted(self.values.items()):
            out.add_sample(sample, dict(labels), value)
        return out


def _families(text: str) -> Iterator[tuple[str, str, str, Iterable[tuple[SeriesKey, float]]]]:
    for fam in text_string_to_metric_families(text):
        yield (
            fam.name,
            fam.type,
            fam.documentation,
            [((s.name, tuple(sorted(s.labels.items()))), float(s.value)) for s in fam.samples],
        )


class Carried:
    """Cumulative series left by children that exited, added into every merge."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._families: dict[str, _Family] = {}

    def add(self, exposition: str) -> None:
        """Keep the counters, histograms and summaries of a dead child's last scrape."""
        with self._lock:
            for name, typ, doc, samples in _families(exposition):
                if typ not in _CUMULATIVE:
                    continue
                fam = self._families.setdefault(name, _Family(name, typ, doc))
                for key, value in samples:
                    if not key[0].endswith("_created"):
                        fam.add(key, value)

    def families(self) -> list[_Family]:
        with self._lock:
            return [
                _Family(f.name, f.type, f.documentation, dict(f.values))
                for f in self._families.values()
            ]


def merge_expositions(texts: Iterable[str], carried: Carried | None = None) -> list[Metric]:
    """Merge Prometheus text expositions of the children into one set of metric families."""
    merged: dict[str, _Family] = {}
    for base in carried.families() if carried is not None else ():
        merged[base.name] = base
    for text in texts:
        for name, typ, doc, samples in _families(text):
            fam = merged.get(name)
            if fam is None:
                fam = merged[name] = _Family(name, typ, doc)
            for key, value in samples:
                fam.add(key, value)
    return [merged[name].metric() for name in sorted(merged)]
