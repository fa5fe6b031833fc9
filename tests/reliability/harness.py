"""Pieces the reliability cases share: worker processes, a steady load, reply counting.

Lost and duplicate counts come from the reply topic: every task's text is its id,
and the echo handler returns it, so a reply names its task. ``lost`` = ids with no
reply, ``duplicates`` = replies beyond one per id (work that was in flight when a
worker or broker died and ran again: at-least-once).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from framework import headers as h
from framework.serde import SchemaStore

REPO = Path(__file__).resolve().parents[2]
STORE = SchemaStore.load([REPO / "schemas"])
TASK = STORE.codec("ktf.examples.WordCountTask")
RESULT = STORE.codec("ktf.examples.WordCountResult")


def create_topics(
    bootstrap: str, names: list[str], partitions: int, rf: int, min_isr: int = 1
) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    config = {"min.insync.replicas": str(min_isr)}
    futures = admin.create_topics(
        [NewTopic(n, partitions, rf, config=config) for n in names], operation_timeout=60
    )
    for fut in futures.values():
        fut.result(timeout=90)


@dataclass
class WorkerProc:
    """One ``ktf worker`` process with the echo handler."""

    name: str
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        fh = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "framework.cli", "worker"],
            env=self.env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        fh.close()
        self.starts += 1

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()

    def rss_kib(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            return None
        return None


def worker_env(bootstrap: str, topic: str, group: str, name: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KTF_")}
    env.update(
        {
            "KTF_BOOTSTRAP_SERVERS": bootstrap,
            "KTF_HANDLERS": "tests.reliability.echo_handlers",
            "KTF_REL_TOPIC": topic,
            "KTF_GROUP_ID": group,
            "KTF_GROUP_INSTANCE_ID": f"{group}-{name}",
            "KTF_CLIENT_ID": f"{group}-{name}",
            "KTF_SCHEMAS_DIR": str(REPO / "schemas"),
            "KTF_METRICS_PORT": "0",
            "KTF_SESSION_TIMEOUT_MS": "6000",
            "KTF_COMMIT_INTERVAL": "0.5",
            "KTF_DRAIN_TIMEOUT": "5",
            "KTF_LOG_FORMAT": "json",
            "KTF_ANNOUNCE_INTERVAL": "0",
            "PYTHONPATH": str(REPO),
        }
    )
    env.update(extra)
    return env


@dataclass
class Load:
    """Produces ``count`` tasks at ``rate`` per second from a thread; ids are 0..count-1."""

    bootstrap: str
    topic: str
    count: int
    rate: float
    sent_at: dict[str, float] = field(default_factory=dict)
    acked: int = 0
    failed: int = 0
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="rel-load", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        producer = Producer(
            {
                "bootstrap.servers": self.bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                # Through broker kills: keep retrying long enough for the cluster to return.
                "delivery.timeout.ms": 180_000,
            }
        )

        def done(err: Any, _msg: Any) -> None:
            if err is None:
                self.acked += 1
            else:
                self.failed += 1

        t0 = time.monotonic()
        for i in range(self.count):
            task_id = f"task-{i}"
            while True:
                try:
                    producer.produce(
                        self.topic,
                        value=TASK.encode({"text": task_id, "lowercase": False}),
                        key=task_id.encode(),
                        headers=[(h.TASK_ID, task_id.encode()), (h.ATTEMPT, b"1")],
                        on_delivery=done,
                    )
                    break
                except BufferError:
                    producer.poll(0.1)
            self.sent_at[task_id] = time.time()
            producer.poll(0)
            ahead = (i + 1) / self.rate - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)
        producer.flush(200)

    def join(self, timeout: float) -> None:
        assert self._thread is not None
        self._thread.join(timeout)

    @property
    def ids(self) -> set[str]:
        return {f"task-{i}" for i in range(self.count)}


class Replies:
    """Reads the reply topic from the start in a thread; counts replies per task id."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.counts: Counter[str] = Counter()
        self.latency: list[float] = []
        self._seen_at: dict[str, float] = {}
        self._stop = threading.Event()
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"rel-replies-{os.getpid()}-{topic}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
            }
        )
        self._topic = topic
        self._thread = threading.Thread(target=self._run, name="rel-replies", daemon=True)

    def start(self, sent_at: dict[str, float]) -> None:
        self._sent_at = sent_at
        md = self._consumer.list_topics(self._topic, timeout=30)
        parts = md.topics[self._topic].partitions
        self._consumer.assign([TopicPartition(self._topic, p, 0) for p in parts])
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for msg in self._consumer.consume(500, 0.2):
                if msg.error() is not None or msg.value() is None:
                    continue
                task_id = RESULT.decode(msg.value())["top"][0]
                self.counts[task_id] += 1
                if self.counts[task_id] == 1 and task_id in self._sent_at:
                    self.latency.append(time.time() - self._sent_at[task_id])

    def wait_for(self, ids: set[str], timeout: float) -> set[str]:
        """Ids still without a reply after ``timeout`` seconds (empty: none lost)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            missing = ids - set(self.counts)
            if not missing:
                return set()
            time.sleep(0.25)
        return ids - set(self.counts)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._consumer.close()

    def duplicates(self) -> int:
        return sum(c - 1 for c in self.counts.values() if c > 1)


def uncommitted(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """Partitions whose committed offset is below the end: partition -> records behind."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        md = consumer.list_topics(topic, timeout=30)
        tps = [TopicPartition(topic, p) for p in md.topics[topic].partitions]
        committed = consumer.committed(tps, timeout=30)
        out = {}
        for tp in committed:
            _, hi = consumer.get_watermark_offsets(tp, timeout=30)
            off = tp.offset if tp.offset >= 0 else 0
            if off < hi:
                out[tp.partition] = hi - off
        return out
    finally:
        consumer.close()


def wait_all_committed(bootstrap: str, group: str, topic: str, timeout: float) -> dict[int, int]:
    """Bounded wait until every partition's commit reached its end; what is left behind."""
    deadline = time.monotonic() + timeout
    left = uncommitted(bootstrap, group, topic)
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = uncommitted(bootstrap, group, topic)
    return left


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
