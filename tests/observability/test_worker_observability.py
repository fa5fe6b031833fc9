"""A real worker's /metrics, /healthz and /readyz over real HTTP, against the real broker."""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from framework import Reject, Settings, TaskContext, Worker, handler
from framework.commands.topics import topic_specs
from framework.kafka.admin import KafkaAdmin
from framework.registry import HandlerRegistry, spec_of
from framework.serde import SchemaStore
from tests._kafka import free_base_port, produce

ROOT = Path(__file__).resolve().parents[2]
STORE = SchemaStore.load([ROOT / "schemas"])
CODEC = STORE.codec("ktf.examples.WordCountTask")

pytestmark = pytest.mark.broker


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    out: dict[tuple[tuple[str, str], ...], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


def registry_for(topic: str, seen: list[str]) -> HandlerRegistry:
    @handler(topic=topic, schema="ktf.examples.WordCountTask", concurrency=10)
    async def judge(task: dict[str, Any], ctx: TaskContext) -> None:
        seen.append(ctx.task_id)
        text = task["text"]
        if text.startswith("reject"):
            raise Reject("rejected on purpose")
        if text.startswith("boom"):
            raise ValueError("failed on purpose")
        return None

    spec = spec_of(judge)
    assert spec is not None
    return HandlerRegistry([spec])


def settings_for(bootstrap: str, unique: str, **extra: Any) -> Settings:
    base: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "group_id": f"{unique}-g",
        "metrics_port": 0,
        "commit_interval": 0.2,
        "schemas_dir": str(ROOT / "schemas"),
    }
    return Settings(**(base | extra))


def test_metrics_scrape_counts_every_task_by_outcome(kafka_bootstrap: str, unique: str) -> None:
    topic = f"{unique}.obs"
    seen: list[str] = []
    registry = registry_for(topic, seen)
    settings = settings_for(kafka_bootstrap, unique)
    KafkaAdmin(settings).ensure_topics(topic_specs(registry, 3, 1))
    texts = ["fine"] * 40 + ["reject"] * 7 + ["boom"] * 13
    produce(
        kafka_bootstrap,
        topic,
        [
            (str(i).encode(), CODEC.encode({"text": t, "lowercase": True}), {})
            for i, t in enumerate(texts)
        ],
    )

    async def scenario() -> str:
        async with Worker(settings, registry, schemas=STORE, serve_http=True) as worker:
            deadline = time.monotonic() + 60
            while len(seen) < len(texts):
                assert time.monotonic() < deadline, "tasks did not all run"
                await asyncio.sleep(0.05)
            # A task is counted when its handler returns: scrape until all are.
            while True:
                status, body = await asyncio.to_thread(
                    get, f"http://127.0.0.1:{worker.http_port}/metrics"
                )
                assert status == 200
                if sum(samples(body, "ktf_tasks_total").values()) >= len(texts):
                    return body
                assert time.monotonic() < deadline, "metrics never counted every task"
                await asyncio.sleep(0.05)

    body = asyncio.run(scenario())
    tasks = samples(body, "ktf_tasks_total")
    by_outcome: dict[str, float] = {}
    for labels, value in tasks.items():
        d = dict(labels)
        assert d["handler"] == "judge" and d["topic"] == topic
        by_outcome[d["outcome"]] = by_outcome.get(d["outcome"], 0) + value
    assert sum(by_outcome.values()) == len(texts)
    assert by_outcome.get("ok") == 40
    assert by_outcome.get("rejected") == 7
    assert sum(v for k, v in by_outcome.items() if k not in ("ok", "rejected")) == 13
    count = samples(body, "ktf_task_duration_seconds_count")
    assert sum(count.values()) == len(texts)
    dead = samples(body, "ktf_dead_letters_total")
    assert sum(dead.values()) == 20


def test_healthz_fails_when_the_fetch_loop_stalls_and_recovers(
    kafka_bootstrap: str, unique: str
) -> None:
    topic = f"{unique}.obs"
    registry = registry_for(topic, [])
    settings = settings_for(kafka_bootstrap, unique, stall_timeout=1.0)
    KafkaAdmin(settings).ensure_topics(topic_specs(registry, 1, 1))

    async def scenario() -> None:
        async with Worker(settings, registry, schemas=STORE, serve_http=True) as worker:
            base = f"http://127.0.0.1:{worker.http_port}"
            assert (await asyncio.to_thread(get, base + "/healthz"))[0] == 200
            assert (await asyncio.to_thread(get, base + "/readyz"))[0] == 200
            consumer = worker._consumer
            assert consumer is not None
            real = consumer.consume

            def stuck(n: int, timeout: float) -> list[Any]:
                time.sleep(3.0)  # a fetch loop that does not turn
                return real(n, timeout)

            consumer.consume = stuck  # type: ignore[method-assign]
            deadline = time.monotonic() + 10
            while (await asyncio.to_thread(get, base + "/healthz"))[0] != 503:
                assert time.monotonic() < deadline, "healthz never reported the stall"
                await asyncio.sleep(0.1)
            status, body = await asyncio.to_thread(get, base + "/healthz")
            assert status == 503, body
            assert "fetch loop" in body
            consumer.consume = real  # type: ignore[method-assign]
            deadline = time.monotonic() + 10
            while (await asyncio.to_thread(get, base + "/healthz"))[0] != 200:
                assert time.monotonic() < deadline, "healthz did not recover"
                await asyncio.sleep(0.2)

    asyncio.run(scenario())


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_healthz_stays_healthy_while_the_broker_is_down(tmp_path: Path, unique: str) -> None:
    from framework.devkafka import ClusterSpec, down, up

    spec = ClusterSpec(nodes=1, base_port=free_base_port(), state_dir=tmp_path / "kafka")
    up(spec, timeout=120)
    try:
        topic = f"{unique}.obs"
        seen: list[str] = []
        registry = registry_for(topic, seen)
        # Finished tasks stay uncommitted until shutdown, whose commit then meets no broker.
        settings = settings_for(
            spec.bootstrap_servers, unique, stall_timeout=1.0, commit_interval=600.0
        )
        KafkaAdmin(settings).ensure_topics(topic_specs(registry, 1, 1))
        produce(
            spec.bootstrap_servers,
            topic,
            [(b"k", CODEC.encode({"text": "fine", "lowercase": True}), {}) for _ in range(5)],
        )
        stop_seconds = 0.0

        async def scenario() -> None:
            nonlocal stop_seconds
            worker = Worker(settings, registry, schemas=STORE, serve_http=True)
            await worker.start()
            try:
                base = f"http://127.0.0.1:{worker.http_port}"
                assert (await asyncio.to_thread(get, base + "/healthz"))[0] == 200
                deadline = time.monotonic() + 30
                while len(seen) < 5:
                    assert time.monotonic() < deadline, "tasks did not run"
                    await asyncio.sleep(0.05)
                await asyncio.to_thread(down, spec)
                for _ in range(6):
                    await asyncio.sleep(0.5)
                    status, body = await asyncio.to_thread(get, base + "/healthz")
                    assert status == 200, f"unhealthy while the broker is away: {body}"
            finally:
                t0 = time.monotonic()
                await worker.stop(drain_timeout=2.0)
                stop_seconds = time.monotonic() - t0

        asyncio.run(asyncio.wait_for(scenario(), 150))
        print(f"stop with the broker down took {stop_seconds:.1f} s")
        # The drain bound covers the final commit; leaving the group gets 5 s more.
        assert stop_seconds < 2.0 + 5.0 + 2.0
    finally:
        down(spec)


def test_trace_id_survives_task_retry_dead_letter_and_reply(
    kafka_bootstrap: str, unique: str
) -> None:
    from framework import RetryPolicy
    from tests._kafka import consume_all, headers_of

    topic = f"{unique}.trace"
    seen_traces: dict[str, list[str]] = {}

    @handler(
        topic=topic,
        schema="ktf.examples.WordCountTask",
        result_schema="ktf.examples.WordCountResult",
        retry=RetryPolicy(tiers=("1s",)),
    )
    async def always_fails(task: dict[str, Any], ctx: TaskContext) -> None:
        seen_traces.setdefault(ctx.task_id, []).append(ctx.trace.trace_id)
        raise ValueError("fails on every attempt")

    spec = spec_of(always_fails)
    assert spec is not None
    registry = HandlerRegistry([spec])
    settings = settings_for(kafka_bootstrap, unique)
    KafkaAdmin(settings).ensure_topics(topic_specs(registry, 1, 1))
    incoming = "4bf92f3577b34da6a3ce929d0e0e4736"
    value = CODEC.encode({"text": "x", "lowercase": True})
    produce(
        kafka_bootstrap,
        topic,
        [
            (
                b"a",
                value,
                {"ktf-task-id": "traced", "traceparent": f"00-{incoming}-00f067aa0ba902b7-01"},
            ),
            (b"b", value, {"ktf-task-id": "untraced"}),
        ],
    )

    async def scenario() -> None:
        async with Worker(settings, registry, schemas=STORE):
            deadline = time.monotonic() + 30
            while sum(len(v) for v in seen_traces.values()) < 4:
                assert time.monotonic() < deadline, f"attempts seen: {seen_traces}"
                await asyncio.sleep(0.05)

    asyncio.run(scenario())
    retries = consume_all(kafka_bootstrap, [f"{topic}.retry.1s"], 2, timeout=10)
    dead = consume_all(kafka_bootstrap, [f"{topic}.dlq"], 2, timeout=10)
    replies = consume_all(kafka_bootstrap, [f"{topic}.reply"], 2, timeout=10)
    assert len(retries) == len(dead) == len(replies) == 2

    def trace_ids(msgs: list[Any]) -> dict[str, str]:
        out = {}
        for m in msgs:
            hdrs = headers_of(m)
            out[hdrs["ktf-task-id"]] = hdrs["traceparent"].split("-")[1]
        return out

    for task_id in ("traced", "untraced"):
        ids = {
            trace_ids(retries)[task_id],
            trace_ids(dead)[task_id],
            trace_ids(replies)[task_id],
            *seen_traces[task_id],
        }
        assert len(ids) == 1, f"{task_id}: trace ids diverged: {ids}"
    assert trace_ids(dead)["traced"] == incoming


def test_failing_task_log_line_carries_the_task_context(kafka_bootstrap: str, unique: str) -> None:
    import io
    import json

    from framework.observability.logging import configure_logging

    topic = f"{unique}.logs"
    registry = registry_for(topic, [])
    settings = settings_for(kafka_bootstrap, unique)
    KafkaAdmin(settings).ensure_topics(topic_specs(registry, 1, 1))
    produce(
        kafka_bootstrap,
        topic,
        [(b"k", CODEC.encode({"text": "boom", "lowercase": True}), {"ktf-task-id": "logged-1"})],
    )
    stream = io.StringIO()
    configure_logging(level="INFO", fmt="json", stream=stream)
    try:

        async def scenario() -> None:
            async with Worker(settings, registry, schemas=STORE):
                deadline = time.monotonic() + 30
                while "task dead-lettered" not in stream.getvalue():
                    assert time.monotonic() < deadline, stream.getvalue()[-2000:]
                    await asyncio.sleep(0.05)

        asyncio.run(scenario())
    finally:
        configure_logging(level="INFO", fmt="auto")
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]
    failure = next(line for line in lines if line.get("event") == "task dead-lettered")
    assert failure["task_id"] == "logged-1"
    assert failure["topic"] == topic
    assert failure["partition"] == 0
    assert failure["offset"] == 0
    assert failure["attempt"] == 1
    assert len(failure["trace_id"]) == 32
    assert failure["error_type"] == "ValueError"
    # Nothing is logged per successful record at INFO: only lifecycle lines and the failure.
    assert sum(1 for line in lines if line.get("task_id")) == 1
