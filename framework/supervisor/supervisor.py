"""``ktf worker --processes N``: N worker processes in one pod, under one supervisor.

Each child is a full worker and its own consumer-group member (client id and
group instance id suffixed ``-<index>``), so a pod uses N cores for any handler
without sharing an event loop. The supervisor:

- starts the children and restarts one that exits, after a backoff that doubles
  with each exit in a row (1 s up to 30 s; reset once a child ran 60 s), logging
  who exited, how, and when it comes back. A child that fails before it ever
  joined with exit code 2 (a configuration error: bad handler module, schema,
  setting) stops the pod with that code, since its replacement would fail alike;
- on SIGTERM, SIGINT or SIGHUP sends every child SIGTERM (each drains within the
  drain timeout, commits and leaves the group) and exits once all have; a second
  signal is forwarded as is (the children then exit at once); a child still there
  ``drain_timeout + 10 s`` after the first signal is killed;
- serves one ``/metrics``, ``/healthz`` and ``/readyz`` for the whole pod on the
  metrics port (framework/supervisor/podhealth.py); the children serve theirs on
  loopback ports only the supervisor reads.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import threading
import time
from collections import deque
from types import FrameType

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from framework.config import Settings
from framework.observability.health import HealthServer
from framework.supervisor.aggregate import Carried
from framework.supervisor.podhealth import PodCollector, PodHealth
from framework.supervisor.process import ChildView, WorkerProcess, describe_exit, http_get

__all__ = ["Supervisor"]

log = structlog.get_logger("framework.supervisor")

BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
#: A child that ran this long before exiting starts its backoff afresh.
STABLE_AFTER = 60.0
#: Beyond the drain timeout, what a child gets to leave the group before it is killed.
KILL_MARGIN = 10.0
#: After a forwarded second signal, how long the children get to exit.
FORCED_EXIT_WAIT = 5.0
#: How often the children's metrics are snapshotted between scrapes (for the totals
#: of a child that dies).
REFRESH_INTERVAL = 5.0
_TEXT = "text/plain; charset=utf-8"
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Supervisor:
    """Runs ``processes`` worker children until a stop signal. See the module docstring."""

    def __init__(self, settings: Settings, processes: int) -> None:
        if processes < 1:
            raise ValueError(f"processes must be >= 1, got {processes}")
        self.settings = settings
        self.children = [WorkerProcess(i, settings) for i in range(processes)]
        self._lock = threading.Lock()
        self._carried = Carried()
        self._signals: deque[int] = deque()
        self._stopping = False
        self._stop_deadline = 0.0
        self._forced: int | None = None
        self._fatal: int | None = None
        self._all_ready_logged = False
        self._done = threading.Event()
        self.registry = CollectorRegistry()
        self.health = PodHealth(self.views, stall_timeout=settings.stall_timeout)
        self.registry.register(PodCollector(self.views, self._remember, self._last, self._carried))
        Gauge(
            "ktf_worker_processes",
            "Worker processes this pod is configured to run (--processes).",
            registry=self.registry,
        ).set(processes)
        running = Gauge(
            "ktf_worker_processes_running",
            "Worker processes of this pod currently running.",
            registry=self.registry,
        )
        running.set_function(lambda: float(sum(1 for c in self.children if c.running)))
        self._restarts = Counter(
            "ktf_worker_process_restarts",
            "Worker processes restarted by the supervisor after they exited, by index.",
            ("process",),
            registry=self.registry,
        )
        for child in self.children:
            self._restarts.labels(str(child.index))
        self._http: HealthServer | None = None

    # -- views for the HTTP threads ------------------------------------------------------

    def views(self) -> list[ChildView]:
        now = time.monotonic()
        with self._lock:
            return [c.view(now) for c in self.children]

    def _remember(self, index: int, pid: int, text: str) -> None:
        with self._lock:
            child = self.children[index]
            if child.running and child.pid == pid:
                child.snapshot = text

    def _child_metrics(self, path: str) -> tuple[int, bytes, str] | None:
        """``/processes/<i>/metrics``: one child's own metrics (announced for ktf top)."""
        parts = path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != "processes" or parts[2] != "metrics":
            return None
        views = self.views()
        if not parts[1].isdigit() or int(parts[1]) >= len(views):
            return 404, f"no worker process {parts[1]} (0..{len(views) - 1})\n".encode(), _TEXT
        view = views[int(parts[1])]
        if not (view.running and view.port):
            return 503, f"{view.name}: {view.status}\n".encode(), _TEXT
        code, body = http_get(view.port, "/metrics")
        if code != 200:
            return 503, f"{view.name}: /metrics answered {code}: {body}\n".encode(), _TEXT
        return 200, body.encode(), CONTENT_TYPE_LATEST

    def _last(self, index: int) -> str | None:
        with self._lock:
            return self.children[index].snapshot

    # -- running -------------------------------------------------------------------------

    def run(self) -> int:
        """Start the children, supervise until stopped, return the pod's exit code."""
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        old_wakeup = signal.set_wakeup_fd(wake_w)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in _STOP_SIGNALS}
        # A handler (not SIG_IGN, which would reap the children behind Popen's back)
        # so that a child's exit writes to the wake-up pipe.
        previous[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, lambda *_: None)
        try:
            if self.settings.metrics_port > 0:
                self._http = HealthServer(
                    self.settings.metrics_port,
                    self.registry,
                    self.health,
                    host=self.settings.metrics_host,
                    route=self._child_metrics,
                )
                self._http.start()
            threading.Thread(target=self._refresh, name="ktf-metrics-refresh", daemon=True).start()
            log.info(
                "starting worker processes",
                processes=len(self.children),
                group=self.settings.group_id,
                group_instance_ids=[c.settings.group_instance_id for c in self.children]
                if self.settings.group_instance_id
                else None,
                loop=self.settings.loop,
                metrics_port=self._http.port if self._http is not None else None,
            )
            for child in self.children:
                with self._lock:
                    child.spawn()
            self.health.set_ready(True)
            self._loop(wake_r)
        finally:
            self._done.set()
            for child in self.children:  # only on an error in the loop itself
                if child.running:
                    child.signal(signal.SIGKILL)
            if self._http is not None:
                self._http.stop()
            for sig, handler in previous.items():
                if handler is not None:  # None: not installed from Python
                    signal.signal(sig, handler)
            signal.set_wakeup_fd(old_wakeup)
            os.close(wake_r)
            os.close(wake_w)
        code = self._exit_code()
        log.info("worker processes stopped", exit_code=code)
        return code

    def _loop(self, wake_r: int) -> None:
        while True:
            self.health.beat()
            while self._signals:
                self._handle_signal(self._signals.popleft())
            now = time.monotonic()
            for child in self.children:
                self._tend(child, now)
            if self._stopping and not any(c.running for c in self.children):
                return
            if self._stopping and now >= self._stop_deadline:
                self._kill_stragglers()
            fds = [wake_r] + [c.sock.fileno() for c in self.children if c.sock is not None]
            with contextlib.suppress(InterruptedError):
                ready, _, _ = select.select(fds, [], [], self._timeout(now))
                if wake_r in ready:
                    with contextlib.suppress(BlockingIOError):
                        os.read(wake_r, 512)

    def _timeout(self, now: float) -> float:
        due = [c.restart_at for c in self.children if c.restart_at is not None]
        if self._stopping:
            due.append(self._stop_deadline)
        soonest = min(due, default=now + 1.0)
        return max(0.0, min(1.0, soonest - now))

    def _tend(self, child: WorkerProcess, now: float) -> None:
        for line in child.read_messages():
            if line == "ready":
                log.info("worker process ready", process=child.index, pid=child.pid)
                if not self._all_ready_logged and all(c.ready for c in self.children):
                    self._all_ready_logged = True
                    log.info("all worker processes ready", processes=len(self.children))
        code = child.poll()
        if code is not None:
            self._exited(child, code, now)
        elif (
            child.restart_at is not None
            and now >= child.restart_at
            and not self._stopping
            and not child.running
        ):
            with self._lock:
                child.restarts += 1
                child.spawn()
            self._restarts.labels(str(child.index)).inc()
            log.info(
                "worker process restarted",
                process=child.index,
                pid=child.pid,
                restarts=child.restarts,
            )

    def _exited(self, child: WorkerProcess, code: int, now: float) -> None:
        pid, uptime, was_ready = child.pid, now - child.started_at, child.ever_ready
        with self._lock:
            if child.snapshot:
                self._carried.add(child.snapshot)
            child.snapshot = None
            child.exited()
            child.ever_ready = False
        how = describe_exit(code)
        if self._stopping:
            level = log.info if code == 0 or self._forced else log.warning
            level("worker process exited", process=child.index, pid=pid, exit=how)
            return
        if code == 2 and not was_ready:
            log.error(
                "worker process failed before joining the group (configuration error, "
                "see its message above): stopping the pod",
                process=child.index,
                pid=pid,
                exit=how,
            )
            self._fatal = 2
            self._begin_stop(None)
            return
        if uptime >= STABLE_AFTER:
            child.failures = 0
        child.failures += 1
        delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (child.failures - 1))
        child.restart_at = now + delay
        self._all_ready_logged = False
        log.warning(
            "worker process exited; restarting it",
            process=child.index,
            pid=pid,
            exit=how,
            uptime_s=round(uptime, 1),
            restart_in_s=delay,
            restarts=child.restarts,
        )

    # -- signals -------------------------------------------------------------------------

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        # Runs between bytecodes of the main thread: only record it (the wake-up fd
        # already woke the loop).
        self._signals.append(signum)

    def _handle_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if not self._stopping:
            log.info(
                "stopping: draining worker processes",
                signal=name,
                processes=sum(1 for c in self.children if c.running),
                drain_timeout=self.settings.drain_timeout,
            )
            self._begin_stop(signum)
            return
        if self._forced is None:
            log.warning("second signal: worker processes exit without draining", signal=name)
            self._forced = signum
            forward = signal.SIGTERM if signum == signal.SIGHUP else signum
            for child in self.children:
                child.signal(forward)
            self._stop_deadline = min(self._stop_deadline, time.monotonic() + FORCED_EXIT_WAIT)

    def _begin_stop(self, signum: int | None) -> None:
        self._stopping = True
        self.health.set_ready(False, "stopping: draining worker processes")
        self._stop_deadline = time.monotonic() + self.settings.drain_timeout + KILL_MARGIN
        for child in self.children:
            child.restart_at = None
            child.signal(signal.SIGTERM)

    def _kill_stragglers(self) -> None:
        left = [c for c in self.children if c.running]
        if not left:
            return
        log.error(
            "worker processes did not exit in time: killing them",
            processes=[c.index for c in left],
            pids=[c.pid for c in left],
        )
        for child in left:
            child.signal(signal.SIGKILL)
        # Reaped by the next turns of the loop.
        self._stop_deadline = time.monotonic() + 5.0

    def _exit_code(self) -> int:
        if self._fatal is not None:
            return self._fatal
        if self._forced is not None:
            return 128 + self._forced
        return 0 if all(c.last_exit in (0, None) for c in self.children) else 1

    # -- metrics snapshots ----------------------------------------------------------------

    def _refresh(self) -> None:
        """Snapshot each child's metrics now and then, so a crash loses little."""
        while not self._done.wait(REFRESH_INTERVAL):
            for view in self.views():
                if view.running and view.port and view.pid:
                    code, body = http_get(view.port, "/metrics")
                    if code == 200:
                        self._remember(view.index, view.pid, body)
