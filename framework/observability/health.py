"""Liveness, readiness and the HTTP server that exposes them with ``/metrics``.

Liveness (``/healthz``) answers one question: is the fetch loop still turning?
The loop calls :meth:`HealthState.beat` every turn; if no beat arrives for
``stall_timeout`` seconds the worker is stalled and Kubernetes should restart
it. It deliberately never looks at the broker: a broker outage must not make
every worker restart at once (the fetch loop keeps turning while the broker is
away). Readiness (``/readyz``) means subscribed and handlers loaded; its body
says where the member stands in its group, so "member, no partitions assigned"
(an idle member, or one whose assignment has not come back after a broker restart)
reads differently from "member, 12 partitions assigned" and from "joining". That
state is not a readiness failure: an idle member beyond the partition count is
healthy, and failing it would block rollouts and node drains (a PodDisruptionBudget
counts unready pods as disrupted). ``ktf_assigned_partitions`` is the alertable
signal.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from framework.errors import FrameworkError

__all__ = ["HealthServer", "HealthState"]

_monotonic = time.monotonic


class HealthState:
    """Heartbeat of the fetch loop plus a readiness flag (thread-safe by construction).

    The heartbeat is a single attribute store, so :meth:`beat` costs about as
    much as reading the monotonic clock; readers tolerate a stale value.
    The stall clock starts at construction: a loop that never turns is stalled too.
    """

    __slots__ = (
        "_assigned",
        "_last_beat",
        "_member",
        "_member_reason",
        "_ready",
        "_ready_reason",
        "stall_timeout",
    )

    def __init__(self, stall_timeout: float = 30.0) -> None:
        if stall_timeout <= 0:
            raise ValueError(f"stall_timeout must be > 0 seconds, got {stall_timeout!r}")
        self.stall_timeout = stall_timeout
        self._last_beat = _monotonic()
        self._ready = False
        self._ready_reason = "starting: not subscribed yet"
        self._member = False
        self._member_reason = "waiting for a partition assignment (joining the group)"
        self._assigned = 0

    def beat(self) -> None:
        """Record that the fetch loop turned (call once per loop iteration)."""
        self._last_beat = _monotonic()

    def seconds_since_beat(self) -> float:
        """Seconds since the last :meth:`beat` (or since construction)."""
        return _monotonic() - self._last_beat

    def healthy(self) -> bool:
        """True while the fetch loop has turned within ``stall_timeout`` seconds."""
        return _monotonic() - self._last_beat <= self.stall_timeout

    def set_ready(self, ready: bool, reason: str | None = None) -> None:
        """Mark the worker ready (subscribed, handlers loaded) or not, with a reason."""
        self._ready = ready
        if ready:
            self._ready_reason = "ready"
        else:
            self._ready_reason = reason or "not ready"

    def joined(self) -> None:
        """The group gave this member an assignment (possibly empty)."""
        self._member = True

    def left(self, reason: str) -> None:
        """This member's partitions were lost; it is rejoining (``reason`` says why)."""
        self._member = False
        self._member_reason = reason

    def set_assigned(self, n: int) -> None:
        """How many partitions this member owns (sampled by the worker)."""
        self._assigned = n

    @property
    def assigned(self) -> int:
        return self._assigned

    def membership(self) -> str:
        """``member, N partitions assigned``, ``member, no partitions assigned`` or why not."""
        if not self._member:
            return self._member_reason
        if self._assigned == 0:
            return "member, no partitions assigned"
        unit = "partition" if self._assigned == 1 else "partitions"
        return f"member, {self._assigned} {unit} assigned"

    def ready(self) -> bool:
        """True once the worker is subscribed with its handlers loaded (and not stopping)."""
        return self._ready

    def ready_reason(self) -> str:
        """Why the worker is (not) ready, for ``/readyz``."""
        return self._ready_reason

    def health_reason(self) -> str:
        """``ok`` or why the worker is considered stalled, for ``/healthz``."""
        idle = self.seconds_since_beat()
        if idle <= self.stall_timeout:
            return "ok"
        return (
            f"stalled: fetch loop has not turned for {idle:.1f} s "
            f"(stall_timeout {self.stall_timeout:g} s)"
        )


#: Extra GET paths: path -> (status, body, content type), or None for "not mine".
Route = Callable[[str], "tuple[int, bytes, str] | None"]


class _Handler(BaseHTTPRequestHandler):
    # Set per server class in HealthServer.start().
    route: Route | None = None
    registry: CollectorRegistry
    health: HealthState
    server_version = "ktf-health"
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        if path == "/metrics":
            try:
                body = generate_latest(self.registry)
            except Exception as exc:  # a broken collector must not kill the server
                self._send(500, f"metrics collection failed: {exc}\n".encode())
                return
            self._send(200, body, CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            reason = self.health.health_reason()
            self._send(200 if reason == "ok" else 503, (reason + "\n").encode())
        elif path == "/readyz":
            ok = self.health.ready() and self.health.healthy()
            if ok:
                text = "ready: " + self.health.membership()
            elif not self.health.healthy():
                text = "not ready: " + self.health.health_reason()
            else:
                text = "not ready: " + self.health.ready_reason()
            self._send(200 if ok else 503, (text + "\n").encode())
        elif path == "/":
            self._send(200, b"ktf worker: /metrics /healthz /readyz\n")
        elif self.route is not None and (answer := type(self).route(path)) is not None:  # type: ignore[misc]
            self._send(*answer)
        else:
            self._send(404, f"not found: {path}\n".encode())

    def do_HEAD(self) -> None:
        self.do_GET()

    def _send(self, code: int, body: bytes, ctype: str = "text/plain; charset=utf-8") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # Probes hit these endpoints every few seconds; access logs would drown real logs.
        return


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # Kubernetes probes are short requests; a slow client must not pin a thread forever.
    timeout = 10.0


class HealthServer:
    """Serves ``/metrics``, ``/healthz`` and ``/readyz`` from a background thread.

    The constructor only stores its arguments; :meth:`start` binds the socket.
    ``port=0`` picks a free port, readable from :attr:`port` after :meth:`start`.
    """

    def __init__(
        self,
        port: int,
        registry: CollectorRegistry,
        health: HealthState,
        host: str = "0.0.0.0",
        route: Route | None = None,
    ) -> None:
        self.host = host
        self.route = route
        self._requested_port = port
        self.registry = registry
        self.health = health
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port once started, else the requested one."""
        if self._server is not None:
            return int(self._server.server_address[1])
        return self._requested_port

    @property
    def url(self) -> str:
        """Base URL of the server (``http://host:port``), loopback for a wildcard host."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        """Bind and serve in a daemon thread. Raises FrameworkError if the port is taken."""
        if self._server is not None:
            return
        handler = type(
            "_BoundHandler",
            (_Handler,),
            {"registry": self.registry, "health": self.health, "route": self.route},
        )
        try:
            server = _Server((self.host, self._requested_port), handler)
        except OSError as exc:
            raise FrameworkError(
                f"cannot serve metrics/health on {self.host}:{self._requested_port}: "
                f"{exc.strerror or exc}"
            ) from exc
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name=f"ktf-health-{self.port}",
            daemon=True,
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving and close the socket (waits at most ``timeout`` seconds)."""
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout)
        self._server = None
        self._thread = None

    def __enter__(self) -> HealthServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
