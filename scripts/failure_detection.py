#!/usr/bin/env python3
"""How long a SIGKILLed member holds its partitions: time from kill -9 to the survivor
owning every partition, for given session timeouts (dynamic membership, classic).

    .venv/bin/python scripts/failure_detection.py --session-timeout-ms 6000 45000
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.reliability.harness import create_topics  # noqa: E402

CHILD = """
import sys, time
from confluent_kafka import Consumer
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2],
              "session.timeout.ms": int(sys.argv[4]), "partition.assignment.strategy": "cooperative-sticky"})
c.subscribe([sys.argv[3]])
while True:
    c.poll(0.2)
    if c.assignment():
        print("assigned", flush=True)
"""


def measure(bootstrap: str, session_ms: int) -> float:
    topic, group = f"fd-{uuid.uuid4().hex[:8]}", f"fd-{uuid.uuid4().hex[:8]}"
    create_topics(bootstrap, [topic], 4, 1)
    survivor = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "session.timeout.ms": session_ms,
                         "partition.assignment.strategy": "cooperative-sticky"})  # fmt: skip
    survivor.subscribe([topic])
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, bootstrap, group, topic, str(session_ms)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # both members own partitions
        survivor.poll(0.1)
        if survivor.assignment() and len(survivor.assignment()) < 4:
            break
    child.kill()
    t0 = time.monotonic()
    while len(survivor.assignment()) < 4:
        survivor.poll(0.1)
        if time.monotonic() - t0 > session_ms / 1000 + 60:
            raise SystemExit("survivor never got the partitions")
    took = time.monotonic() - t0
    child.wait()
    survivor.close()
    return took


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bootstrap-servers", default="127.0.0.1:9092")
    p.add_argument("--session-timeout-ms", type=int, nargs="+", default=[6000, 45000])
    args = p.parse_args()
    for ms in args.session_timeout_ms:
        took = measure(args.bootstrap_servers, ms)
        print(
            f"session.timeout.ms={ms}: partitions of the killed member reassigned after {took:.1f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
