"""Consumer throughput: the raw client limit against the worker runtime.

    .venv/bin/python bench/throughput.py --records 200000 --partitions 6

Pre-fills N small Avro records on a fresh multi-partition topic, then measures,
each phase in a fresh consumer group and from the first record to the last
completion:

  (a) raw: confluent-kafka ``consume(batch)`` + fastavro decode, the physical limit;
  (b) the Worker with a no-op handler (no result schema, so nothing is produced);
  (c) the Worker with a handler awaiting 10 ms, at each ``--concurrency`` C.

Prints records/s, b/a, c / (C / 0.01 s), peak RSS of the process during the phase
(VmHWM, reset between phases through /proc/self/clear_refs) and CPU seconds per
million records (process time, every thread). ``--profile`` runs (b) again under
cProfile and prints where the event loop's time goes. ``--loops uvloop,asyncio``
runs phases (b) and (c) on each event loop in turn (the worker's default is uvloop).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import os
import pstats
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer
from fastavro import parse_schema, schemaless_reader, schemaless_writer

from framework import eventloop
from framework.config import Settings
from framework.kafka.admin import KafkaAdmin, TopicSpec
from framework.observability.metrics import WorkerMetrics
from framework.registry import HandlerRegistry, handler, spec_of
from framework.runtime.worker import Worker
from framework.serde import SchemaStore

ROOT = Path(__file__).resolve().parents[1]
SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "BenchTask",
    "namespace": "ktf.bench",
    "fields": [{"name": "n", "type": "long"}, {"name": "word", "type": "string"}],
}
PHASE_TIMEOUT = 300.0


@dataclass
class Result:
    name: str
    records: int
    seconds: float
    cpu: float
    peak_rss: int

    @property
    def rate(self) -> float:
        return self.records / self.seconds

    def line(self, extra: str = "") -> str:
        return (
            f"{self.name:<28} {self.rate:>10,.0f} rec/s  {self.seconds:6.2f} s  "
            f"peak RSS {self.peak_rss / 2**20:6.1f} MiB  "
            f"CPU {self.cpu / self.records * 1e6:6.1f} s/M rec  {extra}"
        )


def _reset_peak_rss() -> None:
    # Writing 5 resets VmHWM to the current RSS (Linux >= 4.0).
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _peak_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def prefill(bootstrap: str, topic: str, records: int, partitions: int) -> None:
    KafkaAdmin(Settings(bootstrap_servers=bootstrap, metrics_port=0)).ensure_topics(
        [TopicSpec(topic, partitions, 1), TopicSpec(f"{topic}.dlq", 1, 1)]
    )
    parsed = parse_schema(SCHEMA)
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 50,
            "batch.num.messages": 10_000,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 500_000,
        }
    )
    buf = io.BytesIO()
    for n in range(records):
        buf.seek(0)
        buf.truncate()
        schemaless_writer(buf, parsed, {"n": n, "word": "lorem-ipsum"})
        while True:
            try:
                producer.produce(topic, buf.getvalue(), key=b"k%d" % (n % 1000))
                break
            except BufferError:
                producer.poll(0.1)
        if n % 10_000 == 0:
            producer.poll(0)
    if producer.flush(120) != 0:
        raise SystemExit(f"prefill of {topic}: records left unsent after 120 s")


def raw_loop(bootstrap: str, topic: str, records: int, batch: int) -> Result:
    parsed = parse_schema(SCHEMA)
    settings = Settings(bootstrap_servers=bootstrap, group_id=f"bench-raw-{uuid.uuid4().hex[:8]}")
    conf = settings.librdkafka("consumer")
    consumer = Consumer(conf)
    consumer.subscribe([topic])
    _reset_peak_rss()
    count, first, cpu0 = 0, 0.0, 0.0
    deadline = time.monotonic() + PHASE_TIMEOUT
    try:
        while count < records and time.monotonic() < deadline:
            msgs = consumer.consume(batch, 0.1)
            if msgs and not first:
                first, cpu0 = time.perf_counter(), time.process_time()
            for msg in msgs:
                if msg.error() is None:
                    schemaless_reader(io.BytesIO(msg.value()), parsed)
                    count += 1
        elapsed, cpu = time.perf_counter() - first, time.process_time() - cpu0
    finally:
        consumer.close()
    if count < records:
        raise SystemExit(f"raw loop: {count}/{records} records within {PHASE_TIMEOUT}s")
    return Result("(a) raw consume+decode", count, elapsed, cpu, _peak_rss())


def worker_phase(
    name: str,
    bootstrap: str,
    topic: str,
    records: int,
    *,
    sleep: float,
    concurrency: int,
    batch: int,
    profile: cProfile.Profile | None = None,
    metrics: WorkerMetrics | None = None,
    loop: str = "uvloop",
) -> Result:
    marks: dict[str, float] = {}
    count = 0
    done = asyncio.Event()

    async def noop(task: Any, ctx: Any) -> None:
        nonlocal count
        if not count:
            marks["first"], marks["cpu0"] = time.perf_counter(), time.process_time()
        if sleep:
            await asyncio.sleep(sleep)
        count += 1
        if count == records:
            marks["last"], marks["cpu1"] = time.perf_counter(), time.process_time()
            done.set()

    spec = spec_of(
        handler(topic=topic, schema=SCHEMA, ordering="unordered", concurrency=concurrency)(noop)
    )
    assert spec is not None
    settings = Settings(
        bootstrap_servers=bootstrap,
        group_id=f"bench-{uuid.uuid4().hex[:8]}",
        metrics_port=0,
        batch_size=batch,
        max_in_flight=max(concurrency, 1_000),
        log_level="WARNING",
    )

    async def main() -> None:
        worker = Worker(
            settings,
            HandlerRegistry([spec]),
            schemas=SchemaStore.load([ROOT / "schemas"]),
            metrics=metrics,
        )
        async with worker:
            await asyncio.wait_for(done.wait(), PHASE_TIMEOUT)

    _reset_peak_rss()
    if profile is not None:
        profile.enable()
    try:
        eventloop.run(main(), loop)
    finally:
        if profile is not None:
            profile.disable()
    return Result(
        name, count, marks["last"] - marks["first"], marks["cpu1"] - marks["cpu0"], _peak_rss()
    )


class NullMetrics(WorkerMetrics):
    """Per-record instrumentation switched off, to measure what it costs."""

    def task_finished(self, *args: Any, **kwargs: Any) -> None:
        pass

    def in_flight(self, *args: Any, **kwargs: Any) -> None:
        pass


def asyncio_floor(concurrency: int, seconds: float = 3.0, loop: str = "uvloop") -> float:
    """Completions/s of C bare coroutines looping on sleep(10 ms): the event loop's own limit."""
    count = 0

    async def run() -> float:
        nonlocal count
        stop = time.perf_counter() + seconds

        async def one() -> None:
            nonlocal count
            while time.perf_counter() < stop:
                await asyncio.sleep(0.01)
                count += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(concurrency)))
        return count / (time.perf_counter() - t0)

    return eventloop.run(run(), loop)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument(
        "--bootstrap-servers", default=os.environ.get("KTF_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    parser.add_argument("--batch-size", type=int, default=Settings().batch_size)
    parser.add_argument(
        "--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[100, 1000]
    )
    parser.add_argument("--profile", action="store_true", help="profile phase (b) afterwards")
    parser.add_argument("--topic", help="reuse a pre-filled topic instead of creating one")
    parser.add_argument(
        "--loops",
        type=lambda s: [x for x in s.split(",") if x],
        default=["uvloop"],
        help="event loops to run phases (b) and (c) on, in turn (uvloop,asyncio)",
    )
    args = parser.parse_args()
    n, bootstrap = args.records, args.bootstrap_servers
    topic = args.topic or f"bench.throughput.{uuid.uuid4().hex[:8]}"
    if not args.topic:
        t0 = time.perf_counter()
        prefill(bootstrap, topic, n, args.partitions)
        print(
            f"prefilled {n:,} records on {topic} ({args.partitions} partitions) "
            f"in {time.perf_counter() - t0:.1f} s"
        )
    print(f"cores={os.cpu_count()} batch_size={args.batch_size}")

    a = raw_loop(bootstrap, topic, n, args.batch_size)
    print(a.line(), flush=True)
    first = args.loops[0]
    for loop in args.loops:

        def noop(name: str, loop: str = loop, **kw: Any) -> Result:
            return worker_phase(
                name, bootstrap, topic, n, sleep=0.0, concurrency=100,
                batch=args.batch_size, loop=loop, **kw,
            )  # fmt: skip

        b = noop(f"(b) worker, no-op, {loop}")
        print(b.line(f"b/a = {b.rate / a.rate:.2f} (target >= 0.8)"), flush=True)
        if loop != first:
            continue
        # Instrumentation cost: the same phase with per-record metrics switched off,
        # alternated with the instrumented one; best of each (the machine is shared).
        plain, instrumented = [], [b.rate]
        for i in range(2):
            plain.append(noop("(b0) no-op, metrics off", metrics=NullMetrics()).rate)
            if i == 0:
                instrumented.append(noop("(b) again").rate)
        cost = 1 - max(instrumented) / max(plain)
        print(
            f"metrics cost on (b): {cost:+.1%} of throughput (instrumented "
            f"{max(instrumented):,.0f}/s vs off {max(plain):,.0f}/s; target <= 5%)",
            flush=True,
        )
    for c in args.concurrency:
        for loop in args.loops:
            r = worker_phase(
                f"(c) worker, 10 ms, C={c}, {loop}",
                bootstrap,
                topic,
                n,
                sleep=0.01,
                concurrency=c,
                batch=args.batch_size,
                loop=loop,
            )
            ideal = c / 0.01
            target = "target >= 0.9" if c <= 100 else "target >= 50,000 rec/s"
            floor = asyncio_floor(c, loop=loop)
            print(
                r.line(
                    f"c/(C/L) = {r.rate / ideal:.2f} of {ideal:,.0f} ({target}); "
                    f"bare {loop} {floor:,.0f}/s = {floor / ideal:.2f}"
                ),
                flush=True,
            )
    if args.profile:
        prof = cProfile.Profile()
        worker_phase(
            "(b) profiled",
            bootstrap,
            topic,
            n,
            sleep=0.0,
            concurrency=100,
            batch=args.batch_size,
            profile=prof,
            loop=first,
        )
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(25)
        print(out.getvalue())


if __name__ == "__main__":
    main()
