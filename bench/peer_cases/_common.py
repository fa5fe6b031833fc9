"""What every case of bench/peers.py shares: the schema, the decoder, progress reports.

Standard library and fastavro only: this module is imported inside each peer's own
virtual environment. A case calls :meth:`Progress.hit` once per processed record (or
``hit(n)`` once per batch of n); the orchestrator (bench/peers.py) hears about the
first and the last record and, every 20 ms, the count so far, over a Unix datagram
socket (``BENCH_REPORT``). Timestamps are ``time.monotonic()``, which is one clock
for every process of the machine.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import threading
import time
from typing import Any

from fastavro import parse_schema, schemaless_reader

#: The task record of every case (as bench/throughput.py): ~20 bytes encoded.
SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "BenchTask",
    "namespace": "ktf.bench",
    "fields": [{"name": "n", "type": "long"}, {"name": "word", "type": "string"}],
}
PARSED = parse_schema(SCHEMA)

TOPIC = os.environ.get("BENCH_TOPIC", "bench.peers")
GROUP = os.environ.get("BENCH_GROUP", "bench-peers")
BOOTSTRAP = os.environ.get("BENCH_BOOTSTRAP", "127.0.0.1:9092")
RECORDS = int(os.environ.get("BENCH_RECORDS", "200000"))
WORKLOAD = os.environ.get("BENCH_WORKLOAD", "noop")  # noop | sleep
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "100"))
SLEEP = 0.01


def decode(value: bytes) -> Any:
    """The same fastavro decode in every case."""
    return schemaless_reader(io.BytesIO(value), PARSED)


class Progress:
    """Counts processed records of this process and reports them to the orchestrator."""

    def __init__(self) -> None:
        self.count = 0
        self.first = 0.0
        self.last = 0.0
        # With several processes (ktf --processes) no process knows its share: only
        # the periodic reports tell the orchestrator when the sum is complete.
        self.target = 0 if os.environ.get("BENCH_SHARED") else RECORDS
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._path = os.environ.get("BENCH_REPORT", "")
        self._pid = os.getpid()
        threading.Thread(target=self._report, name="bench-progress", daemon=True).start()

    def hit(self, n: int = 1) -> None:
        count = self.count = self.count + n
        if count == n:
            self.first = time.monotonic()
            self._send("first")
        if count == self.target:
            self.last = time.monotonic()
            self._send("done")

    def _send(self, kind: str) -> None:
        if not self._path:
            return
        msg = {
            "kind": kind,
            "pid": self._pid,
            "count": self.count,
            "first": self.first,
            "last": self.last or time.monotonic(),
        }
        # The orchestrator gone or busy: it has its own timeouts.
        with contextlib.suppress(OSError):
            self._sock.sendto(json.dumps(msg).encode(), self._path)

    def _report(self) -> None:
        seen = 0
        while True:
            time.sleep(0.02)
            count = self.count
            if count != seen:
                seen = count
                self.last = time.monotonic()
                self._send("progress")


PROGRESS = Progress()
hit = PROGRESS.hit
