"""The demo behind ``make demo``, and the demo producer of docker-compose.yml.

``python -m framework.demo run``: start the local broker unless
``KTF_BOOTSTRAP_SERVERS`` is set, ensure topics, start a worker with the example
handlers, produce tasks with progress, wait for every reply or dead letter, print
one summary line, and stop what it started.

``python -m framework.demo produce --count N --rate R``: only produce example tasks.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_END, Consumer, Producer, TopicPartition

from framework import headers as h
from framework.config import Settings
from framework.kafka.watermarks import watermarks
from framework.serde import SchemaStore

WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "the",
    "lazy",
    "dog",
    "while",
    "kafka",
    "tasks",
    "flow",
]
TOPICS = {
    "tasks.word-count": "ktf.examples.WordCountTask",
    "tasks.fetch-url": "ktf.examples.FetchUrlTask",
    "tasks.divide": "ktf.examples.DivideTask",
}
#: one divide task in this many has a zero divisor and is dead-lettered
POISON_EVERY = 50


def _payload(topic: str, i: int, rng: random.Random) -> dict[str, Any]:
    if topic == "tasks.word-count":
        return {"text": " ".join(rng.choice(WORDS) for _ in range(12)), "lowercase": True}
    if topic == "tasks.fetch-url":
        return {"url": f"https://example.test/item/{i}", "latency_ms": rng.randint(1, 20)}
    return {"dividend": rng.randint(0, 10_000), "divisor": 0 if i % POISON_EVERY == 0 else 7}


def produce(
    settings: Settings, count: int, *, run_id: str, rate: float = 0.0, progress: bool = True
) -> list[str]:
    """Produce ``count`` example tasks spread over the three example topics."""
    store = SchemaStore.load([settings.schemas_dir])
    codecs = {t: store.codec(name) for t, name in TOPICS.items()}
    producer = Producer(settings.librdkafka("producer"))
    rng = random.Random(42)
    topics = list(TOPICS)
    ids: list[str] = []
    started = time.monotonic()
    last_report = started
    for i in range(count):
        topic = topics[i % len(topics)]
        task_id = f"{run_id}-{i}"
        value = codecs[topic].encode(_payload(topic, i, rng))
        hdrs = {h.TASK_ID: task_id, h.ATTEMPT: "1", h.CORRELATION_ID: task_id}
        while True:
            try:
                producer.produce(topic, value, key=str(i % 64), headers=h.encode(hdrs))  # type: ignore[arg-type]
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
        ids.append(task_id)
        if rate > 0:
            time.sleep(max(0.0, started + (i + 1) / rate - time.monotonic()))
        now = time.monotonic()
        if progress and now - last_report >= 1.0:
            last_report = now
            print(f"  produced {i + 1}/{count}", file=sys.stderr, flush=True)
    remaining = producer.flush(30)
    if remaining:
        raise SystemExit(f"demo: {remaining} tasks could not be delivered to Kafka")
    return ids


def collect(
    settings: Settings, start: dict[TopicPartition, int], run_id: str, expected: int, timeout: float
) -> tuple[set[str], set[str]]:
    """Read replies and dead letters of this run until all tasks are accounted for."""
    conf = settings.librdkafka("consumer") | {"group.id": f"ktf-demo-reader-{run_id}"}
    consumer = Consumer(conf)
    consumer.assign([TopicPartition(tp.topic, tp.partition, off) for tp, off in start.items()])
    ok: set[str] = set()
    dead: set[str] = set()
    deadline = time.monotonic() + timeout
    last_report = 0.0
    prefix = f"{run_id}-"
    try:
        while len(ok | dead) < expected and time.monotonic() < deadline:
            for msg in consumer.consume(500, 0.2):
                if msg.error():
                    continue
                hdrs = h.to_dict(msg.headers())  # type: ignore[arg-type]
                task_id = hdrs.get(h.TASK_ID, "")
                if not task_id.startswith(prefix):
                    continue
                if (msg.topic() or "").endswith(".dlq"):
                    dead.add(task_id)
                elif hdrs.get(h.STATUS) == h.STATUS_OK:
                    ok.add(task_id)
            now = time.monotonic()
            if now - last_report >= 1.0:
                last_report = now
                print(
                    f"  replies {len(ok)}, dead letters {len(dead)} of {expected}",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        consumer.close()
    return ok, dead


def _end_offsets(settings: Settings, topics: list[str]) -> dict[TopicPartition, int]:
    consumer = Consumer(settings.librdkafka("consumer") | {"group.id": "ktf-demo-offsets"})
    try:
        md = consumer.list_topics(timeout=10)
        out: dict[TopicPartition, int] = {}
        for topic in topics:
            meta = md.topics.get(topic)
            if meta is None or meta.error is not None:
                raise SystemExit(f"demo: topic {topic!r} does not exist (run ktf topics ensure)")
            for p in meta.partitions:
                # Right after a broker (re)start a partition may have no leader yet.
                _low, high = watermarks(consumer, TopicPartition(topic, p), 60.0)
                out[TopicPartition(topic, p)] = high if high >= 0 else OFFSET_END
        return out
    finally:
        consumer.close()


def _ktf(*args: str) -> list[str]:
    return [sys.executable, "-m", "framework.cli", *args]


def run_demo(count: int, timeout: float) -> int:
    """The whole ``make demo`` flow; returns 0 when nothing was lost."""
    started_broker = None
    if not os.environ.get("KTF_BOOTSTRAP_SERVERS"):
        from framework.devkafka import ClusterSpec, status, up

        spec = ClusterSpec(nodes=1)
        if not status(spec).running:
            print("demo: starting the local Kafka broker", file=sys.stderr)
            up(spec, progress=lambda line: print(f"  {line}", file=sys.stderr), timeout=180)
            started_broker = spec
    settings = Settings.load({"group_id": "ktf-demo", "metrics_port": 0})
    env = dict(
        os.environ,
        KTF_BOOTSTRAP_SERVERS=settings.bootstrap_servers,
        KTF_GROUP_ID="ktf-demo",
        KTF_LOG_FORMAT="json",
    )
    worker: subprocess.Popen[bytes] | None = None
    log_path = Path(os.environ.get("KTF_DEMO_LOG", "/tmp/ktf-demo-worker.log"))
    try:
        subprocess.run(
            _ktf("topics", "ensure", "--handlers", "handlers.examples"),
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        reply_topics = [f"{t}.reply" for t in TOPICS] + [f"{t}.dlq" for t in TOPICS]
        start = _end_offsets(settings, reply_topics)
        with log_path.open("wb") as log_file:
            worker = subprocess.Popen(
                _ktf("worker", "--handlers", "handlers.examples", "--metrics-port", "0"),
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        print(f"demo: worker started (pid {worker.pid}, log {log_path})", file=sys.stderr)
        run_id = uuid.uuid4().hex[:8]
        t0 = time.monotonic()
        print(f"demo: producing {count} tasks", file=sys.stderr)
        ids = produce(settings, count, run_id=run_id)
        ok, dead = collect(settings, start, run_id, len(ids), timeout)
        elapsed = time.monotonic() - t0
        lost = len(ids) - len(ok) - len(dead)
        print(
            f"sent {len(ids)}, replies {len(ok)}, dead letters {len(dead)}, {lost} lost, "
            f"{elapsed:.1f} s, {len(ids) / elapsed:.0f} tasks/s"
        )
        return 0 if lost == 0 else 1
    finally:
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=40)
            except subprocess.TimeoutExpired:
                worker.kill()
        if started_broker is not None:
            from framework.devkafka import down

            down(started_broker)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m framework.demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="the whole demo (make demo)")
    r.add_argument("--count", type=int, default=3000)
    r.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for replies")
    p = sub.add_parser("produce", help="only produce example tasks")
    p.add_argument("--count", type=int, default=1000, help="0 = forever")
    p.add_argument(
        "--rate", type=float, default=0.0, help="tasks per second; 0 = as fast as possible"
    )
    args = parser.parse_args(argv)
    if args.cmd == "run":
        return run_demo(args.count, args.timeout)
    settings = Settings.load()
    run_id = uuid.uuid4().hex[:8]
    if args.count == 0:
        batch = 0
        while True:
            produce(settings, 1000, run_id=f"{run_id}-{batch}", rate=args.rate or 100.0)
            batch += 1
    produce(settings, args.count, run_id=run_id, rate=args.rate)
    return 0


if __name__ == "__main__":
    sys.exit(main())
