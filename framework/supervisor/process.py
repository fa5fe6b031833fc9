"""The supervisor's handle on one worker process: start it, hear from it, scrape it.

A handle outlives the processes it starts: when its process exits the handle keeps
the index, the restart count and the backoff, and starts the next process of the
same index (same client id and group instance id, so with static membership the
replacement takes over the partitions without a group rebalance).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from framework.config import Settings
from framework.observability.announce import advertised_host
from framework.supervisor.wire import send_settings

__all__ = ["ChildView", "WorkerProcess", "child_metrics_path", "child_settings", "describe_exit"]

#: Loopback requests never go through an HTTP proxy from the environment.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
#: Timeout of one HTTP request to a child (metrics, health); they answer on loopback.
SCRAPE_TIMEOUT = 2.0


def child_settings(settings: Settings, index: int) -> Settings:
    """The pod's settings for child ``index``: its own ids, a loopback metrics port.

    Its loopback port is of no use to anyone else, so the child announces (on
    ktf.workers, for ``ktf top``) the pod's port and the path under which the
    supervisor serves this child's own metrics, or none when the pod serves none.
    """
    instance = settings.group_instance_id
    url = ""
    if settings.metrics_port > 0:
        host = advertised_host(settings)
        host = f"[{host}]" if ":" in host else host
        url = f"http://{host}:{settings.metrics_port}{child_metrics_path(index)}"
    return settings.replace(
        advertised_metrics_url=url,
        client_id=f"{settings.client_id}-{index}",
        group_instance_id=f"{instance}-{index}" if instance else None,
        metrics_port=0,
        metrics_host="127.0.0.1",
        processes="1",
    )


def child_metrics_path(index: int) -> str:
    """Where the pod serves the metrics of process ``index`` alone."""
    return f"/processes/{index}/metrics"


def describe_exit(code: int) -> str:
    """``exit code 1`` or ``killed by SIGKILL`` for a Popen return code."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


@dataclass(frozen=True)
class ChildView:
    """A consistent snapshot of one child, for the HTTP threads."""

    index: int
    pid: int | None
    port: int | None
    running: bool
    ready_once: bool
    status: str

    @property
    def name(self) -> str:
        return f"process {self.index}" + (f" (pid {self.pid})" if self.pid else "")


class WorkerProcess:
    """One child slot. Methods are called from the supervisor's main loop only."""

    def __init__(self, index: int, settings: Settings) -> None:
        self.index = index
        self.settings = child_settings(settings, index)
        self.proc: subprocess.Popen[bytes] | None = None
        self.sock: socket.socket | None = None
        self.port: int | None = None
        self.ready = False
        self.ever_ready = False
        self.started_at = 0.0
        self.restarts = 0
        #: consecutive exits without a stable run, for the backoff
        self.failures = 0
        self.restart_at: float | None = None
        self.last_exit: int | None = None
        self.snapshot: str | None = None
        self._pending = b""

    # -- lifecycle --------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def spawn(self) -> None:
        """Start the process of this slot and send it its settings."""
        ours, theirs = socket.socketpair()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "framework.supervisor.child", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                # Its own session: terminal signals reach the supervisor only.
                start_new_session=True,
                env=dict(os.environ, PYTHONUNBUFFERED="1"),
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.sock = ours
        self.port = None
        self.ready = False
        self.snapshot = None
        self.restart_at = None
        self._pending = b""
        self.started_at = time.monotonic()
        send_settings(ours, self.settings, self.index)
        ours.setblocking(False)

    def poll(self) -> int | None:
        """The exit code once the process has exited (None while it runs)."""
        if self.proc is None:
            return None
        return self.proc.poll()

    def exited(self) -> None:
        """Forget the process that exited (the slot stays)."""
        if self.sock is not None:
            self.sock.close()
        self.sock = None
        self.port = None
        self.ready = False
        self.last_exit = self.proc.returncode if self.proc is not None else None
        self.proc = None

    def signal(self, signum: int) -> None:
        if self.running and self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signum)

    # -- messages from the child ---------------------------------------------------

    def read_messages(self) -> list[str]:
        """Lines the child sent since the last call (``port N``, ``ready``)."""
        if self.sock is None:
            return []
        try:
            data = self.sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return []
        except OSError:
            data = b""
        if not data:
            return []
        self._pending += data
        *lines, self._pending = self._pending.split(b"\n")
        out = []
        for raw in lines:
            line = raw.decode(errors="replace").strip()
            if line.startswith("port ") and line[5:].isdigit():
                self.port = int(line[5:])
            elif line == "ready":
                self.ready = self.ever_ready = True
            out.append(line)
        return out

    # -- views and scraping ------------------------------------------------------------

    def view(self, now: float) -> ChildView:
        if self.running:
            status = "running" if self.ready else "starting: not in the group yet"
        elif self.restart_at is not None:
            why = describe_exit(self.last_exit) if self.last_exit is not None else "exit"
            status = f"restarting in {max(0.0, self.restart_at - now):.1f} s after {why}"
        elif self.last_exit is not None:
            status = f"exited ({describe_exit(self.last_exit)})"
        else:
            status = "not started"
        return ChildView(self.index, self.pid, self.port, self.running, self.ever_ready, status)


def http_get(port: int, path: str, timeout: float = SCRAPE_TIMEOUT) -> tuple[int, str]:
    """GET ``http://127.0.0.1:port/path`` -> (status, body); (0, reason) if unreachable."""
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with _DIRECT.open(url, timeout=timeout) as resp:
            return int(resp.status), resp.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        body = exc.read().decode(errors="replace") if exc.fp is not None else ""
        return int(exc.code), body
    except (OSError, ValueError) as exc:
        return 0, f"unreachable: {exc}"
