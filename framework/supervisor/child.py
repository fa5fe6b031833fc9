"""Entry point of one supervised worker process: ``python -m framework.supervisor.child FD``.

FD is this end of a socket pair shared with the supervisor. The supervisor first
sends the child's settings (a length-prefixed pickle of ``(Settings, index)``: the
pod's settings with this child's client id, group instance id and a loopback
metrics port). The child answers ``port N`` once its /metrics, /healthz and
/readyz server is bound and ``ready`` once it has joined the group, then runs the
ordinary :class:`~framework.runtime.worker.Worker` until SIGTERM/SIGINT (which
the supervisor forwards). A thread keeps reading the socket: end of file means the
supervisor is gone, and the child drains and exits instead of running on orphaned.

The child runs in a session of its own (the supervisor starts it so), so a
terminal's Ctrl-C reaches the supervisor alone, which then stops every child once.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import threading
from collections.abc import Sequence

import structlog

from framework import eventloop
from framework.observability.logging import bind_process_fields, configure_logging
from framework.registry import load_handlers
from framework.runtime.worker import Worker
from framework.serde import SchemaStore
from framework.supervisor.wire import receive_settings

__all__ = ["main"]

log = structlog.get_logger("framework.supervisor")


async def _serve(worker: Worker, sock: socket.socket) -> int:
    """Run the worker; tell the supervisor its port and readiness; stop if it goes away."""
    loop = asyncio.get_running_loop()
    run = asyncio.create_task(worker.run(), name="ktf-worker")

    def parent_gone() -> None:
        if run.done():
            return
        log.warning("the supervisor is gone: draining and exiting")
        worker.request_stop()

    def watch() -> None:
        with contextlib.suppress(OSError):
            while sock.recv(64):
                pass
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            loop.call_soon_threadsafe(parent_gone)

    threading.Thread(target=watch, name="ktf-supervisor-watch", daemon=True).start()
    port_sent = ready_sent = False
    while not run.done() and not ready_sent:
        port = worker.http_port
        if not port_sent and port:
            _tell(sock, f"port {port}")
            port_sent = True
        if port_sent and worker.health.ready():
            _tell(sock, "ready")
            ready_sent = True
        await asyncio.wait({run}, timeout=0.02)
    return await run


def _tell(sock: socket.socket, line: str) -> None:
    with contextlib.suppress(OSError):  # the supervisor is gone: the watcher handles it
        sock.sendall(line.encode() + b"\n")


def _run(sock: socket.socket) -> int:
    settings, index = receive_settings(sock)
    # Every line this process logs, from any thread, says which child it is.
    bind_process_fields(worker_process=index)
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    registry = load_handlers(settings.handlers)
    store = SchemaStore.load([settings.schemas_dir])
    worker = Worker(settings, registry, schemas=store, serve_http=True)
    return eventloop.run(_serve(worker, sock), settings.loop)


def main(argv: Sequence[str] | None = None) -> int:
    from framework.cli import guarded

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or not args[0].isdigit():
        print("usage: python -m framework.supervisor.child FD (started by ktf worker)")
        return 2
    sock = socket.socket(fileno=int(args[0]))
    return guarded(lambda: _run(sock))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
