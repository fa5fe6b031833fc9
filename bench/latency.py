"""Latency of request/reply and of task pick-up, against the raw client's floor.

    .venv/bin/python bench/latency.py                 # 200, 1,000, 5,000/s and the max
    .venv/bin/python bench/latency.py --trace         # + where the time goes, per stage

One run, one broker, fixed (open-loop) rates. For every rate, in this order:

  raw    confluent-kafka echo: a sender thread produces (linger 0) to a request
         topic; an echo process polls it and produces each record to a reply topic
         (linger 0); a receiver thread polls the replies. The floor Kafka allows.
  call   ``TaskClient.call()`` round trip to a ktf worker running the example
         ``word_count`` handler (``handlers.examples``) in its own process, with
         logging (INFO, JSON, to a file) and metrics (the /metrics server) on, as
         ``ktf worker`` runs in production.
  submit ``TaskClient.submit()`` to the start of the handler: the handler records
         when it starts (wall clock: client and worker share the machine's clock).

The first ``--warmup`` seconds of every phase are left out. "max" is
``--max-fraction`` of the worker's capacity, measured first by a burst of
``submit_many``. Prints p50/p90/p99/max per phase, the ratios to the raw floor at
the same rate, and the latency targets met or missed. ``--trace`` also breaks the
``call()`` round trip into stages (record age when the worker's fetch returned it,
fetch to handler start, reply age when the client's reply fetch returned it, reply
fetch to ``call()`` returning) and reports how full the fetches were.

``--worker K=V`` / ``--client K=V`` set :class:`Settings` fields of the worker or the
client (e.g. ``--worker poll_timeout=0.001``); ``--kafka K=V`` adds a librdkafka
property to both (``kafka_overrides``); ``--patch MODULE.NAME=VALUE`` sets a module
constant in both processes (for trying out a change before making it).
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import importlib
import multiprocessing as mp
import os
import socket
import statistics
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]
SENT_HEADER = "bench-sent"
WORD_COUNT_SCHEMA = "ktf.examples.WordCountTask"
WORD_COUNT_RESULT = "ktf.examples.WordCountResult"
PAYLOAD = {"text": "the quick brown fox jumps over the lazy dog the end", "lowercase": True}


# -- settings and patches shared by both processes ------------------------------------


def parse_pairs(pairs: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise SystemExit(f"expected KEY=VALUE, got {pair!r}")
        try:
            out[key.strip()] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            out[key.strip()] = raw
    return out


def apply_patches(patches: dict[str, Any]) -> None:
    for dotted, value in patches.items():
        module, _, name = dotted.rpartition(".")
        mod = importlib.import_module(module)
        if not hasattr(mod, name):
            raise SystemExit(f"--patch {dotted}: {module} has no {name}")
        setattr(mod, name, value)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the echo process (raw floor) ------------------------------------------------------


def echo_main(bootstrap: str, request: str, reply: str, group: str, ready: Any, stop: Any) -> None:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest"}
    )
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    consumer.subscribe([request], on_assign=lambda _c, _p: ready.set())
    try:
        while not stop.is_set():
            msg = consumer.poll(0.1)
            if msg is None or msg.error() is not None:
                continue
            producer.produce(reply, msg.value(), key=msg.key())
            producer.poll(0)
    finally:
        producer.flush(5)
        consumer.close()


class RawClient:
    """A fixed-rate sender thread and a receiver thread; latency per echoed record."""

    def __init__(self, bootstrap: str, request: str, reply: str, partitions: int) -> None:
        self.request = request
        self.producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
        self.consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False}
        )
        ends = []
        for p in range(partitions):
            _lo, hi = self.consumer.get_watermark_offsets(TopicPartition(reply, p), timeout=10)
            ends.append(TopicPartition(reply, p, hi))
        self.consumer.assign(ends)
        self.sent: dict[bytes, tuple[int, float]] = {}
        self.latencies: list[tuple[int, float]] = []
        self._phase = 0
        self._running = True
        self._rx = threading.Thread(target=self._receive, daemon=True)
        self._rx.start()

    def _receive(self) -> None:
        sent, out = self.sent, self.latencies
        while self._running:
            msg = self.consumer.poll(0.1)
            if msg is None or msg.error() is not None:
                continue
            now = time.perf_counter()
            seen = sent.pop(msg.key(), None)
            if seen is not None:
                out.append((seen[0], now - seen[1]))

    def run(self, rate: float, seconds: float) -> None:
        n = int(rate * seconds)
        self._phase += 1
        phase = self._phase
        start = time.perf_counter()
        sent, produce, poll = self.sent, self.producer.produce, self.producer.poll
        for i in range(n):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            key = b"%d:%d" % (phase, i)
            sent[key] = (i, time.perf_counter())
            produce(self.request, PAYLOAD["text"].encode(), key=key)
            poll(0)
        self.producer.flush(10)
        deadline = time.monotonic() + 10
        while sent and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self) -> None:
        self._running = False
        self._rx.join(2)
        self.consumer.close()


# -- the worker process ---------------------------------------------------------------


class _Probe:
    """What the worker process records; swapped out whole when the parent reads it."""

    def __init__(self) -> None:
        self.starts: list[tuple[float, float]] = []  # (sent, handler start), wall clock
        self.fetch_age: list[float] = []  # record age when the fetch returned it
        self.fetch_calls: list[tuple[float, int]] = []  # (seconds in the call, records)
        self.dispatch: list[float] = []  # fetch returned -> handler start
        self.fetched: dict[tuple[int, int], float] = {}
        self.corr_start: dict[str, float] = {}  # correlation id -> handler start


def _trace_consumer_methods(probe: Callable[[], _Probe]) -> None:
    from framework.kafka import consumer as kc

    def wrap(fn: Any) -> Any:
        def traced(self: Any, *args: Any, **kwargs: Any) -> Any:
            t0 = time.time()
            messages = fn(self, *args, **kwargs)
            now = time.time()
            p = probe()
            p.fetch_calls.append((now - t0, len(messages)))
            for msg in messages:
                p.fetch_age.append(now - msg.timestamp()[1] / 1000.0)
                p.fetched[(msg.partition(), msg.offset())] = now
            return messages

        return traced

    for name in ("consume", "consume_ready"):
        if hasattr(kc.KafkaConsumer, name):
            setattr(kc.KafkaConsumer, name, wrap(getattr(kc.KafkaConsumer, name)))


def worker_main(
    conn: Any,
    bootstrap: str,
    topic: str,
    group: str,
    overrides: dict[str, Any],
    patches: dict[str, Any],
    trace: bool,
    log_path: str,
    metrics_port: int,
) -> None:
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    apply_patches(patches)
    from framework import Settings, Worker, handler
    from framework.observability.logging import configure_logging
    from framework.registry import HandlerRegistry, spec_of
    from framework.serde import SchemaStore
    from handlers.examples import word_count

    log_file = open(log_path, "a")  # noqa: SIM115 - open for the process's lifetime
    configure_logging("INFO", "json", stream=log_file)
    holder = [_Probe()]
    if trace:
        _trace_consumer_methods(lambda: holder[0])
    base = spec_of(word_count)
    assert base is not None

    async def timed(task: dict[str, Any], ctx: Any) -> Any:
        now = time.time()
        p = holder[0]
        sent = ctx.headers.get(SENT_HEADER)
        if sent is not None:
            p.starts.append((float(sent), now))
        if trace:
            fetched = p.fetched.pop((ctx.partition, ctx.offset), None)
            if fetched is not None:
                p.dispatch.append(now - fetched)
            corr = ctx.headers.get("ktf-correlation-id")
            if corr is not None:
                p.corr_start[corr] = now
        return await word_count(task, ctx)

    spec = spec_of(
        handler(
            topic=topic,
            schema=base.schema,
            result_schema=base.result_schema,
            ordering=base.ordering,
            concurrency=base.concurrency,
        )(timed)
    )
    assert spec is not None
    settings = Settings.load(
        {
            "bootstrap_servers": bootstrap,
            "group_id": group,
            "client_id": f"{group}-worker",
            "metrics_port": metrics_port,
            "log_level": "INFO",
            "log_format": "json",
            **overrides,
        },
        env={},
    )

    async def main() -> None:
        loop = asyncio.get_running_loop()
        worker = Worker(settings, HandlerRegistry([spec]), schemas=SchemaStore.load(["schemas"]))
        async with worker:
            deadline = time.monotonic() + 60
            while not any(e[0] == "assign" and e[1] for e in worker.events):
                if time.monotonic() > deadline:
                    raise SystemExit("worker: no partitions assigned within 60 s")
                await asyncio.sleep(0.05)
            conn.send("ready")

            def commands() -> None:
                while True:
                    cmd = conn.recv()
                    if cmd == "stop":
                        loop.call_soon_threadsafe(worker.request_stop)
                        return
                    old, holder[0] = holder[0], _Probe()
                    old.fetched = {}
                    conn.send(old.__dict__)

            threading.Thread(target=commands, daemon=True).start()
            await worker.wait()

    asyncio.run(main())
    conn.send("stopped")


# -- statistics -----------------------------------------------------------------------


def pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": pct(values, 0.50),
        "p90": pct(values, 0.90),
        "p99": pct(values, 0.99),
        "max": max(values) if values else float("nan"),
    }


def ms(x: float) -> str:
    return f"{x * 1e3:7.1f}" if x == x else "    n/a"


# -- the ktf client side --------------------------------------------------------------


async def drive(rate: float, seconds: float, fire: Callable[[int], Any]) -> float:
    """Start ``fire(i)`` at ``rate`` per second for ``seconds``; returns the rate reached."""
    n = int(rate * seconds)
    pending: set[asyncio.Task[Any]] = set()
    start = time.perf_counter()
    i = 0
    while i < n:
        due = min(n, int((time.perf_counter() - start) * rate) + 1)
        while i < due:
            t = asyncio.create_task(fire(i))
            pending.add(t)
            t.add_done_callback(pending.discard)
            i += 1
        delay = start + i / rate - time.perf_counter()
        await asyncio.sleep(max(0.0, delay))
    sent_for = time.perf_counter() - start
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
    return n / sent_for


class KtfSide:
    def __init__(self, client: Any, topic: str, conn: Any, trace: bool) -> None:
        self.client = client
        self.topic = topic
        self.conn = conn
        self.trace = trace
        #: correlation id -> (reply timestamp, wall clock and perf_counter at its fetch)
        self.reply_seen: dict[str, tuple[float, float, float]] = {}
        self.listener_calls: list[tuple[float, int]] = []  # (seconds in the call, records)

    def probe(self) -> dict[str, Any]:
        self.conn.send("probe")
        data: dict[str, Any] = self.conn.recv()
        return data

    async def calls(self, rate: float, seconds: float, warmup: float) -> dict[str, Any]:
        client, topic = self.client, self.topic
        out: list[float] = []
        back: list[float] = []
        seen: dict[str, tuple[float, float, float]] = {}
        errors = 0
        first_kept = int(rate * warmup)
        self.probe()
        self.listener_calls.clear()

        async def one(i: int) -> None:
            nonlocal errors
            hdrs = {SENT_HEADER: repr(time.time())}
            t0 = time.perf_counter()
            try:
                reply = await client.call(topic, PAYLOAD, headers=hdrs, timeout=30)
            except Exception:
                errors += 1
                return
            t1 = time.perf_counter()
            if i >= first_kept:
                out.append(t1 - t0)
                if self.trace:
                    got = self.reply_seen.pop(reply.correlation_id, None)
                    if got is not None:
                        seen[reply.correlation_id] = got
                        back.append(t1 - got[2])
            elif self.trace:
                self.reply_seen.pop(reply.correlation_id, None)

        reached = await drive(rate, seconds, one)
        probe = self.probe()
        starts = probe["corr_start"]
        # Wall-clock stages; reply timestamps have millisecond resolution.
        produced = [ts - starts[c] for c, (ts, _w, _p) in seen.items() if c in starts]
        reply_age = [w - ts for ts, w, _p in seen.values()]
        return {
            "rtt": out,
            "reached": reached,
            "errors": errors,
            "probe": probe,
            "back": back,
            "produced": produced,
            "reply_age": reply_age,
            "listener_calls": list(self.listener_calls),
        }

    async def submits(self, rate: float, seconds: float, warmup: float) -> dict[str, Any]:
        client, topic = self.client, self.topic
        acks: list[float] = []
        errors = 0
        self.probe()
        t_start = time.time()

        async def one(i: int) -> None:
            nonlocal errors
            t0 = time.perf_counter()
            try:
                await client.submit(topic, PAYLOAD, headers={SENT_HEADER: repr(time.time())})
            except Exception:
                errors += 1
                return
            if i >= rate * warmup:
                acks.append(time.perf_counter() - t0)

        reached = await drive(rate, seconds, one)
        # The handler starts may trail the last ack a little.
        starts: list[tuple[float, float]] = []
        deadline = time.monotonic() + 10
        expected = int(rate * seconds) - errors
        while time.monotonic() < deadline:
            starts.extend(self.probe()["starts"])
            if len(starts) >= expected:
                break
            await asyncio.sleep(0.2)
        kept = [b - a for a, b in starts if a >= t_start + warmup]
        return {"start": kept, "ack": acks, "reached": reached, "errors": errors}

    async def capacity(self, n: int) -> float:
        """Tasks/s the worker starts from a backlog of ``n`` (with replies produced)."""
        self.probe()
        await self.client.submit_many(
            self.topic, [PAYLOAD] * n, headers={SENT_HEADER: repr(time.time())}
        )
        starts: list[float] = []
        deadline = time.monotonic() + 120
        while len(starts) < n and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            starts.extend(b for _a, b in self.probe()["starts"])
        if len(starts) < n // 2:
            raise SystemExit(f"capacity probe: only {len(starts)}/{n} tasks started in 120 s")
        starts.sort()
        # The middle 80%: leave out the ramp-up and the tail.
        lo, hi = starts[len(starts) // 10], starts[len(starts) * 9 // 10]
        return (len(starts) * 0.8) / max(hi - lo, 1e-6)


def trace_reply_consumer(side: KtfSide) -> None:
    """Record, per reply, its age when the client's reply fetch returned it."""
    import confluent_kafka

    from framework.client import replies

    base = confluent_kafka.Consumer

    class TracingConsumer(base):  # type: ignore[misc, valid-type]
        def consume(self, *args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            messages = super().consume(*args, **kwargs)
            now, t = time.time(), time.perf_counter()
            side.listener_calls.append((t - t0, len(messages)))
            for msg in messages:
                corr = replies._correlation(msg)
                if corr is not None:
                    side.reply_seen[corr] = (msg.timestamp()[1] / 1000.0, now, t)
            return messages

    replies.confluent_kafka.Consumer = TracingConsumer  # type: ignore[misc]


# -- the run --------------------------------------------------------------------------


def line(rate: str, name: str, values: Sequence[float], floor: dict[str, float] | None) -> str:
    s = summary(values)
    text = (
        f"{rate:>8} {name:<30} {s['n']:>6.0f} {ms(s['p50'])} {ms(s['p90'])} "
        f"{ms(s['p99'])} {ms(s['max'])}"
    )
    if floor is not None and s["n"]:
        text += f"   {s['p50'] / floor['p50']:6.1f}x {s['p90'] / floor['p90']:6.1f}x"
        text += f" {s['p99'] / floor['p99']:6.1f}x"
    return text


async def run_ktf_phases(args: argparse.Namespace, ctx: dict[str, Any]) -> None:
    from framework import Settings, TaskClient
    from framework.client.topics import TopicSchema
    from framework.serde import SchemaStore

    settings = Settings.load(
        {
            "bootstrap_servers": args.bootstrap_servers,
            "client_id": ctx["client_id"],
            "metrics_port": 0,
            **ctx["client_overrides"],
        },
        env={},
    )
    client = TaskClient(
        settings,
        schemas={ctx["topic"]: TopicSchema(WORD_COUNT_SCHEMA, WORD_COUNT_RESULT)},
        store=SchemaStore.load([ROOT / "schemas"]),
        reply_partitions=args.reply_partitions,
    )
    side = KtfSide(client, ctx["topic"], ctx["conn"], args.trace)
    if args.trace:
        trace_reply_consumer(side)
    async with client:
        await client.call(ctx["topic"], PAYLOAD, timeout=30)  # starts the reply listener
        for label, rate in ctx["rates"]:
            if rate is None:
                cap = await side.capacity(args.capacity_tasks)
                rate = cap * args.max_fraction
                label = f"{rate:,.0f}"
                ctx["out"].append(
                    f"worker capacity (backlog of {args.capacity_tasks:,} tasks, replies on): "
                    f"{cap:,.0f} tasks/s; max phase at {args.max_fraction:.0%} of it"
                )
                ctx["max_rate"] = rate
            await ctx["raw_phase"](label, rate)
            c = await side.calls(rate, args.seconds, args.warmup)
            s = await side.submits(rate, args.seconds, args.warmup)
            ctx["results"][label].update({"rate": rate, "call": c, "submit": s})
            floor = ctx["results"][label]["raw"]
            emit = ctx["emit"]
            emit(line(f"{label}/s", "ktf call() round trip", c["rtt"], floor))
            emit(line(f"{label}/s", "ktf submit -> handler start", s["start"], floor))
            emit(line(f"{label}/s", "ktf submit() until acked", s["ack"], None))
            notes = []
            for what, r in (("call", c), ("submit", s)):
                if r["reached"] < 0.95 * rate:
                    notes.append(f"{what} sender reached only {r['reached']:,.0f}/s")
                if r["errors"]:
                    notes.append(f"{what} errors: {r['errors']}")
            if notes:
                emit(f"{'':>8} note: " + "; ".join(notes))
            if args.trace:
                emit_trace(emit, label, c)


def emit_trace(emit: Callable[[str], None], label: str, c: dict[str, Any]) -> None:
    p = c["probe"]
    r = f"{label}/s"
    emit(line(r, "  task age at worker fetch", p["fetch_age"], None))
    emit(line(r, "  worker fetch -> handler start", p["dispatch"], None))
    emit(line(r, "  handler start -> reply made", c["produced"], None))
    emit(line(r, "  reply age at client fetch", c["reply_age"], None))
    emit(line(r, "  client fetch -> call() returns", c["back"], None))
    for who, calls in (("worker", p["fetch_calls"]), ("reply listener", c["listener_calls"])):
        if calls:
            durations = [d for d, _n in calls]
            sizes = [n for _d, n in calls if n]
            emit(
                f"{'':>8}   {who} fetch calls: {len(calls)}, p50 {ms(pct(durations, 0.5)).strip()} "
                f"ms inside, {statistics.mean(sizes) if sizes else 0:.1f} records per non-empty"
            )


def scrape(port: int, name: str) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError as exc:
        return f"(scrape failed: {exc})"
    count = next((ln for ln in text.splitlines() if ln.startswith(f"{name}_count")), None)
    total = next((ln for ln in text.splitlines() if ln.startswith(f"{name}_sum")), None)
    if count is None or total is None:
        return f"{name}: not exported"
    n, s = float(count.rsplit(" ", 1)[1]), float(total.rsplit(" ", 1)[1])
    return f"{name}: count {n:,.0f}, mean {s / n * 1e3 if n else 0:.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--bootstrap-servers", default=os.environ.get("KTF_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    parser.add_argument("--rates", default="200,1000,5000,max", help="comma-separated; 'max'")
    parser.add_argument("--seconds", type=float, default=10.0, help="per phase, warm-up included")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--max-fraction", type=float, default=0.8)
    parser.add_argument("--capacity-tasks", type=int, default=30_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--reply-partitions", type=int, default=3)
    parser.add_argument("--trace", action="store_true", help="break call() down by stage")
    parser.add_argument("--worker", action="append", default=[], metavar="K=V")
    parser.add_argument("--client", action="append", default=[], metavar="K=V")
    parser.add_argument("--kafka", action="append", default=[], metavar="K=V")
    parser.add_argument("--patch", action="append", default=[], metavar="MOD.NAME=V")
    parser.add_argument("--log", default="/tmp/ktf-bench-latency-worker.log")
    args = parser.parse_args()

    from confluent_kafka import libversion, version

    from framework import Settings
    from framework.commands.topics import topic_specs
    from framework.kafka.admin import KafkaAdmin, TopicSpec
    from framework.registry import HandlerRegistry, handler, spec_of

    patches = parse_pairs(args.patch)
    apply_patches(patches)
    kafka = {k: str(v) for k, v in parse_pairs(args.kafka).items()}
    worker_over = parse_pairs(args.worker)
    client_over = parse_pairs(args.client)
    if kafka:
        worker_over["kafka_overrides"] = kafka
        client_over["kafka_overrides"] = kafka

    run_id = uuid.uuid4().hex[:8]
    prefix = f"bench.latency.{run_id}"
    topic = f"{prefix}.tasks"
    req, rep = f"{prefix}.echo.req", f"{prefix}.echo.rep"

    async def nothing(task: Any, ctx: Any) -> None:
        return None

    # Only for topic names: the same topics the worker's handler needs.
    shape = spec_of(
        handler(
            topic=topic,
            schema=WORD_COUNT_SCHEMA,
            result_schema=WORD_COUNT_RESULT,
        )(nothing)
    )
    assert shape is not None
    admin = KafkaAdmin(Settings(bootstrap_servers=args.bootstrap_servers, metrics_port=0))
    admin.ensure_topics(
        [
            *topic_specs(HandlerRegistry([shape]), args.partitions, 1),
            TopicSpec(req, args.partitions, 1),
            TopicSpec(rep, args.reply_partitions, 1),
        ]
    )

    out: list[str] = []

    def emit(text: str) -> None:
        out.append(text)
        print(text, flush=True)

    d = Settings()
    eff = d.replace(**{k: v for k, v in worker_over.items() if hasattr(d, k)})
    emit(
        f"bench/latency.py  broker {args.bootstrap_servers}  cores {os.cpu_count()}  "
        f"load {os.getloadavg()[0]:.2f}  confluent-kafka {version()[0]} / librdkafka "
        f"{libversion()[0]}"
    )
    producer_conf = eff.librdkafka("producer")
    consumer_conf = eff.librdkafka("consumer")
    emit(
        f"worker: batch_size {eff.batch_size}, poll_timeout {eff.poll_timeout}, "
        f"linger.ms {producer_conf.get('linger.ms')}, fetch.wait.max.ms "
        f"{consumer_conf.get('fetch.wait.max.ms')}; overrides {worker_over or '-'}; "
        f"client overrides {client_over or '-'}; patches {patches or '-'}"
    )
    emit(f"{args.seconds:g} s per phase, first {args.warmup:g} s left out; times in ms")
    emit(
        f"{'rate':>8} {'measure':<30} {'n':>6} {'p50':>7} {'p90':>7} {'p99':>7} {'max':>7}"
        f"   {'p50/raw':>7} {'p90/raw':>7} {'p99/raw':>7}"
    )

    spawn = mp.get_context("spawn")
    stop_echo = spawn.Event()
    echo_ready = spawn.Event()
    echo = spawn.Process(
        target=echo_main,
        args=(args.bootstrap_servers, req, rep, f"{prefix}.echo", echo_ready, stop_echo),
        daemon=True,
    )
    echo.start()
    parent, child = spawn.Pipe()
    metrics_port = free_port()
    worker = spawn.Process(
        target=worker_main,
        args=(
            child,
            args.bootstrap_servers,
            topic,
            f"{prefix}.workers",
            worker_over,
            patches,
            args.trace,
            args.log,
            metrics_port,
        ),
        daemon=True,
    )
    worker.start()
    if not parent.poll(90) or parent.recv() != "ready":
        raise SystemExit(f"the worker did not start within 90 s (log: {args.log})")
    if not echo_ready.wait(60):
        raise SystemExit("the echo process got no partitions within 60 s")

    raw = RawClient(args.bootstrap_servers, req, rep, args.reply_partitions)
    results: dict[str, Any] = {}

    async def raw_phase(label: str, rate: float) -> None:
        raw.latencies.clear()
        await asyncio.get_running_loop().run_in_executor(None, raw.run, rate, args.seconds)
        kept = [v for i, v in raw.latencies if i >= rate * args.warmup]
        results[label] = {"raw": summary(kept)}
        emit(line(f"{label}/s", "raw echo round trip (floor)", kept, None))

    rates: list[tuple[str, float | None]] = []
    for r in args.rates.split(","):
        rates.append(("max", None) if r.strip() == "max" else (f"{float(r):,.0f}", float(r)))
    ctx: dict[str, Any] = {
        "topic": topic,
        "conn": parent,
        "client_id": f"{prefix}.client",
        "client_overrides": client_over,
        "rates": rates,
        "raw_phase": raw_phase,
        "results": results,
        "emit": emit,
        "out": out,
    }
    try:
        asyncio.run(run_ktf_phases(args, ctx))
        emit(scrape(metrics_port, "ktf_task_queue_seconds"))
    finally:
        raw.close()
        stop_echo.set()
        parent.send("stop")
        worker.join(30)
        echo.join(10)
    targets(emit, results)


def targets(emit: Callable[[str], None], results: dict[str, Any]) -> None:
    emit("targets:")
    for label, r in results.items():
        raw, call = r["raw"], summary(r["call"]["rtt"])
        if label in ("200", "1,000"):
            ok50 = call["p50"] <= raw["p50"] + 0.002
            ok99 = call["p99"] <= 3 * raw["p99"]
            emit(
                f"  {label}/s call p50 {ms(call['p50']).strip()} <= raw p50 + 2 = "
                f"{ms(raw['p50'] + 0.002).strip()} ms: {'met' if ok50 else 'MISSED'}; "
                f"p99 {ms(call['p99']).strip()} <= 3 x raw p99 = "
                f"{ms(3 * raw['p99']).strip()} ms: {'met' if ok99 else 'MISSED'}"
            )
        elif label == "5,000":
            ok = call["p99"] <= 0.025
            emit(
                f"  5,000/s call p99 {ms(call['p99']).strip()} <= 25 ms: "
                f"{'met' if ok else 'MISSED'}"
            )


if __name__ == "__main__":
    main()
