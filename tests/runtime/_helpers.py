"""Shared helpers for the runtime's broker tests: topics, tasks, replies, worker processes."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from fastavro import parse_schema, schemaless_reader, schemaless_writer

from framework.config import Settings
from framework.kafka.admin import KafkaAdmin, TopicSpec
from tests.runtime.handlers_fixture import RESULT_SCHEMA, TASK_SCHEMA

ROOT = Path(__file__).resolve().parents[2]
KTF = str(ROOT / ".venv" / "bin" / "ktf")
_TASK = parse_schema(TASK_SCHEMA)
_RESULT = parse_schema(RESULT_SCHEMA)


def create_topics(bootstrap: str, topics: dict[str, int]) -> None:
    """Create ``name -> partitions`` topics (replication 1) and wait for them."""
    admin = KafkaAdmin(Settings(bootstrap_servers=bootstrap, metrics_port=0))
    admin.ensure_topics([TopicSpec(name, parts, 1) for name, parts in topics.items()])


def encode_task(n: int, sleep_ms: int) -> bytes:
    out = io.BytesIO()
    schemaless_writer(out, _TASK, {"n": n, "sleep_ms": sleep_ms})
    return out.getvalue()


def decode_result(data: bytes) -> dict[str, Any]:
    return schemaless_reader(io.BytesIO(data), _RESULT)  # type: ignore[no-any-return]


def produce_tasks(
    bootstrap: str,
    topic: str,
    tasks: Iterable[tuple[bytes | None, int, int]],
    *,
    partition: int | None = None,
) -> int:
    """Produce ``(key, n, sleep_ms)`` tasks; returns how many were acknowledged."""
    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.num.messages": 10_000}
    )
    errors: list[Any] = []
    count = 0

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(err)

    for key, n, sleep_ms in tasks:
        kwargs: dict[str, Any] = {"key": key, "on_delivery": on_delivery}
        if partition is not None:
            kwargs["partition"] = partition
        while True:
            try:
                producer.produce(topic, encode_task(n, sleep_ms), **kwargs)
                break
            except BufferError:
                producer.poll(0.1)
        count += 1
        producer.poll(0)
    left = producer.flush(60)
    assert left == 0 and not errors, f"producing to {topic}: {left} unsent, errors {errors[:3]}"
    return count


class ReplyReader:
    """Reads a reply topic from the beginning; keeps every reply seen."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.replies: list[dict[str, Any]] = []
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"reader-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        self._consumer.subscribe([topic])

    def poll(self, seconds: float) -> int:
        """Read for up to ``seconds``; returns how many replies arrived."""
        end = time.monotonic() + seconds
        got = 0
        while time.monotonic() < end:
            batch = self._consumer.consume(1000, 0.2)
            for msg in batch:
                if msg.error():
                    continue
                hdrs = {k: v.decode() for k, v in (msg.headers() or [])}
                rec = decode_result(msg.value()) if msg.value() else {}
                rec["status"] = hdrs.get("ktf-status")
                self.replies.append(rec)
                got += 1
        return got

    def wait_distinct(self, expected: int, timeout: float, key: str = "n") -> set[Any]:
        """Poll until ``expected`` distinct values of ``key`` were seen (or time out)."""
        end = time.monotonic() + timeout
        seen = {r.get(key) for r in self.replies}
        while len(seen) < expected and time.monotonic() < end:
            self.poll(0.5)
            seen = {r.get(key) for r in self.replies}
        return seen

    def close(self) -> None:
        self._consumer.close()


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offset per partition (-1001 when none)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        tps = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        c.close()


def spawn_worker(
    bootstrap: str,
    topic: str,
    group: str,
    *,
    args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    log_path: Path | None = None,
) -> subprocess.Popen[bytes]:
    """``ktf worker`` with the fixture handlers on ``topic`` as a child process."""
    full_env = dict(os.environ)
    full_env.update(
        {
            "KTF_BOOTSTRAP_SERVERS": bootstrap,
            "KTF_GROUP_ID": group,
            "KTF_TEST_TOPIC": topic,
            "PYTHONPATH": str(ROOT),
            "KTF_LOG_FORMAT": "json",
        }
    )
    full_env.update(env or {})
    cmd = [KTF, "worker", "--handlers", "tests.runtime.handlers_fixture", "--metrics-port", "0"]
    if log_path is None:
        return subprocess.Popen(
            [*cmd, *args],
            cwd=ROOT,
            env=full_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    # The child keeps its own copy of the descriptor; ours is closed at once.
    with open(log_path, "ab") as out:
        return subprocess.Popen(
            [*cmd, *args], cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT
        )


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Terminate (then kill) a child process that is still running."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def python() -> str:
    return sys.executable


def inprocess_settings(bootstrap: str, group: str, **overrides: Any) -> Settings:
    """Settings for a Worker running inside the test process."""
    base: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "group_id": group,
        "metrics_port": 0,
        "commit_interval": 0.2,
        "session_timeout_ms": 6000,
        "log_level": "WARNING",
    }
    base.update(overrides)
    return Settings(**base)
