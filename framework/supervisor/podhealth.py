"""``/healthz``, ``/readyz`` and ``/metrics`` of a pod of worker processes.

The supervisor serves them with the same :class:`HealthServer` a single worker
uses; what it plugs in answers for every child at once:

- ``/healthz`` is 200 while the supervisor's loop turns and no running child
  reports a stalled fetch loop; otherwise 503 naming the stalled children. A child
  that crashed and waits for its restart is not a liveness failure: the
  supervisor is already handling it.
- ``/readyz`` is 200 when every child is ready, with each child's membership
  (``process 0 (pid N): member, 3 partitions assigned; ...``); otherwise 503 with
  the state of each child that is not (starting, restarting in N s after exit
  code X, stalled).
- ``/metrics`` is the children's metrics merged (framework/supervisor/aggregate.py)
  plus the supervisor's own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from framework.observability.health import HealthState
from framework.supervisor.aggregate import Carried, merge_expositions
from framework.supervisor.process import ChildView, http_get

__all__ = ["PodCollector", "PodHealth"]

#: Probe answers are reused for this long: one /readyz asks ready() and healthy().
_PROBE_TTL = 0.5


@dataclass(frozen=True)
class _Probe:
    view: ChildView
    healthz: tuple[int, str]
    readyz: tuple[int, str]

    @property
    def stalled(self) -> bool:
        return self.view.running and self.healthz[0] == 503

    @property
    def ready(self) -> bool:
        return self.view.running and self.readyz[0] == 200


class PodHealth(HealthState):
    """Health of the supervisor (its own heartbeat) and of every child (probed)."""

    __slots__ = ("_cache", "_children")

    def __init__(self, children: Callable[[], list[ChildView]], stall_timeout: float) -> None:
        super().__init__(stall_timeout=stall_timeout)
        self._children = children
        self._cache: tuple[float, list[_Probe]] = (0.0, [])

    def _probe(self) -> list[_Probe]:
        at, probes = self._cache
        now = time.monotonic()
        if now - at < _PROBE_TTL:
            return probes
        probes = []
        for view in self._children():
            if view.running and view.port:
                probes.append(_Probe(view, http_get(view.port, "/healthz", 1.0), _readyz(view)))
            else:
                probes.append(_Probe(view, (0, view.status), (0, view.status)))
        self._cache = (now, probes)
        return probes

    def health_reason(self) -> str:
        idle = self.seconds_since_beat()
        if idle > self.stall_timeout:
            return (
                f"stalled: the supervisor loop has not turned for {idle:.1f} s "
                f"(stall_timeout {self.stall_timeout:g} s)"
            )
        stalled = [p for p in self._probe() if p.stalled]
        if not stalled:
            return "ok"
        return "stalled: " + "; ".join(f"{p.view.name}: {p.healthz[1].strip()}" for p in stalled)

    def healthy(self) -> bool:
        return self.health_reason() == "ok"

    def ready(self) -> bool:
        if not super().ready():
            return False
        probes = self._probe()
        return bool(probes) and all(p.ready for p in probes)

    def membership(self) -> str:
        """Each ready child's own membership detail (its /readyz after ``ready: ``)."""
        parts = []
        for p in self._probe():
            text = p.readyz[1].strip()
            detail = text[len("ready: ") :] if text.startswith("ready: ") else text
            parts.append(f"{p.view.name}: {detail}")
        return "; ".join(parts) or "no worker processes"

    def ready_reason(self) -> str:
        if not super().ready():
            return super().ready_reason()
        probes = self._probe()
        waiting = [p for p in probes if not p.ready]
        if not waiting:
            return "ready"
        parts = []
        for p in waiting:
            text = p.readyz[1].strip() if p.view.running and p.view.port else p.view.status
            if text.startswith("not ready: "):
                text = text[len("not ready: ") :]
            parts.append(f"{p.view.name}: {text or p.view.status}")
        return f"{len(probes) - len(waiting)} of {len(probes)} worker processes ready; " + (
            "; ".join(parts)
        )


def _readyz(view: ChildView) -> tuple[int, str]:
    code, body = http_get(view.port or 0, "/readyz", 1.0)
    # Not answering: usually it has just exited and the supervisor is about to notice.
    return code, body if code else f"not answering /readyz ({body})"


class PodCollector(Collector):
    """The children's metrics, merged at scrape time (see aggregate.py)."""

    def __init__(
        self,
        children: Callable[[], list[ChildView]],
        remember: Callable[[int, int, str], None],
        last: Callable[[int], str | None],
        carried: Carried,
    ) -> None:
        self._children = children
        self._remember = remember
        self._last = last
        self._carried = carried

    def collect(self) -> Iterator[Metric]:
        texts: list[str] = []
        for view in self._children():
            text = None
            if view.running and view.port and view.pid:
                code, body = http_get(view.port, "/metrics")
                if code == 200:
                    text = body
                    self._remember(view.index, view.pid, body)
            if text is None:
                # Unreachable this time (exiting, busy): its last scrape keeps totals whole.
                text = self._last(view.index)
            if text:
                texts.append(text)
        yield from merge_expositions(texts, self._carried)
