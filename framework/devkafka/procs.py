"""Process and port plumbing for the dev cluster: pid files, liveness, ports, log tails."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from framework.devkafka.spec import LOOPBACK

# Popen objects of brokers this Python process started. Holding them keeps
# subprocess from warning about still-running children, and lets `down` in the
# same process reap them (a killed, unreaped child is a zombie that still "exists").
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def remember(proc: subprocess.Popen[bytes]) -> None:
    _CHILDREN[proc.pid] = proc


def reap(pid: int) -> int | None:
    """Collect the exit status of ``pid`` if it is our child and has exited."""
    proc = _CHILDREN.get(pid)
    if proc is not None:
        code = proc.poll()
        if code is not None:
            _CHILDREN.pop(pid, None)
        return code
    return None


def read_pid(path: Path) -> int | None:
    """The pid in a pid file, or None if the file is missing or garbage."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def write_pid(path: Path, pid: int) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{pid}\n", encoding="ascii")
    os.replace(tmp, path)


def is_running(pid: int, marker: str) -> bool:
    """Whether ``pid`` is a live (non-zombie) process whose command line contains ``marker``.

    The marker (the node's properties path) guards against a recycled pid.
    """
    reap(pid)
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmdline = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return False
    # The state letter follows the parenthesised command name.
    state = stat.rsplit(b")", 1)[-1].split()[0:1]
    if state == [b"Z"] and _threads(pid) <= 1:
        # A zombie with no threads left. (A JVM's main thread can show Z while its
        # other threads still shut down and hold the listening sockets.)
        return False
    return marker in cmdline.split("\0")


def _threads(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 0


def signal_pid(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def wait_gone(pids: dict[int, str], timeout: float) -> dict[int, str]:
    """Wait until the processes are gone; return those still running at the deadline."""
    deadline = time.monotonic() + timeout
    alive = dict(pids)
    while alive:
        alive = {pid: m for pid, m in alive.items() if is_running(pid, m)}
        if not alive or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    return alive


def port_in_use(port: int, host: str = LOOPBACK) -> bool:
    """Whether a server socket on ``host:port`` would fail to bind (as Kafka's would)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Java server sockets set SO_REUSEADDR, so TIME_WAIT leftovers do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def accepts(port: int, host: str = LOOPBACK, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def last_meaningful_line(paths: list[Path], offsets: dict[Path, int] | None = None) -> str:
    """The most telling line of the logs: the last error, else the last non-empty line.

    ``offsets`` skips what the files held before this start (logs are appended to).
    """
    lines: list[str] = []
    for path in paths:
        start = (offsets or {}).get(path, 0)
        try:
            with path.open("rb") as fh:
                fh.seek(start)
                data = fh.read()[-256_000:]
        except OSError:
            continue
        lines += [ln.strip() for ln in data.decode("utf-8", errors="replace").splitlines()]
    lines = [ln for ln in lines if ln]
    if not lines:
        return "no log output"
    markers = (" ERROR ", " FATAL ", "Exception", "Error:", "error:")
    chosen = next((ln for ln in reversed(lines) if any(m in ln for m in markers)), lines[-1])
    return chosen if len(chosen) <= 400 else chosen[:397] + "..."


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
