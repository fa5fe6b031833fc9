"""One task's whole path against the real broker: replies, dead letters, restarts."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import fastavro
import pytest

from framework import Settings, TaskContext, Worker, handler
from framework.commands.topics import topic_specs
from framework.kafka.admin import KafkaAdmin
from framework.registry import HandlerRegistry, spec_of
from framework.serde import SchemaStore
from tests._kafka import committed, consume_all, headers_of, produce

ROOT = Path(__file__).resolve().parents[2]
STORE = SchemaStore.load([ROOT / "schemas"])
TASK_SCHEMA = fastavro.parse_schema(
    json.loads((ROOT / "schemas/examples/WordCountTask.avsc").read_text())
)
RESULT_SCHEMA = fastavro.parse_schema(
    json.loads((ROOT / "schemas/examples/WordCountResult.avsc").read_text())
)

pytestmark = pytest.mark.broker


def encode(text: str) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, TASK_SCHEMA, {"text": text, "lowercase": True})
    return buf.getvalue()


def decode_result(data: bytes) -> dict[str, Any]:
    return fastavro.schemaless_reader(io.BytesIO(data), RESULT_SCHEMA)  # type: ignore[return-value]


def make_registry(topic: str, calls: Counter[str]) -> HandlerRegistry:
    @handler(
        topic=topic,
        schema="ktf.examples.WordCountTask",
        result_schema="ktf.examples.WordCountResult",
        concurrency=20,
    )
    async def count_words(task: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
        calls[ctx.task_id] += 1
        await asyncio.sleep(0)
        words = task["text"].split()
        return {"words": len(words), "distinct": len(set(words)), "top": []}

    spec = spec_of(count_words)
    assert spec is not None
    return HandlerRegistry([spec])


def settings_for(bootstrap: str, unique: str, **extra: Any) -> Settings:
    return Settings(
        bootstrap_servers=bootstrap,
        group_id=f"{unique}-g",
        metrics_port=0,
        commit_interval=0.2,
        schemas_dir=str(ROOT / "schemas"),
        **extra,
    )


def ensure(settings: Settings, registry: HandlerRegistry, partitions: int = 3) -> None:
    KafkaAdmin(settings).ensure_topics(topic_specs(registry, partitions, 1))


async def run_until(worker: Worker, done: Any, timeout: float) -> None:
    async with worker:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not done():
            if loop.time() > deadline:
                raise AssertionError("timed out waiting for the worker")
            await asyncio.sleep(0.05)


def test_thousand_tasks_get_correlated_replies_and_bad_bytes_go_to_dlq(
    kafka_bootstrap: str, unique: str
) -> None:
    topic = f"{unique}.wc"
    calls: Counter[str] = Counter()
    registry = make_registry(topic, calls)
    settings = settings_for(kafka_bootstrap, unique)
    ensure(settings, registry)

    texts = {f"task-{i}": " ".join(["w"] * (i % 17 + 1)) for i in range(1000)}
    poison = {f"bad-{i}": bytes([0xFF, 0xFE, i]) + b"\x00not avro" for i in range(10)}
    records: list[tuple[bytes | None, bytes | None, dict[str, str]]] = []
    for i, (cid, text) in enumerate(texts.items()):
        records.append((str(i).encode(), encode(text), {"ktf-correlation-id": cid}))
        if i % 100 == 50:
            bad_id = f"bad-{i // 100}"
            records.append((b"poison", poison[bad_id], {"ktf-correlation-id": bad_id}))
    assert produce(kafka_bootstrap, topic, records) == 1010

    asyncio.run(
        run_until(Worker(settings, registry, schemas=STORE), lambda: len(calls) >= 1000, 60)
    )

    replies = consume_all(kafka_bootstrap, [f"{topic}.reply"], 1010)
    ok = {}
    for msg in replies:
        hdrs = headers_of(msg)
        if hdrs["ktf-status"] == "ok":
            ok[hdrs["ktf-correlation-id"]] = decode_result(msg.value())
    assert len(ok) == 1000
    for cid, text in texts.items():
        assert ok[cid]["words"] == len(text.split()), cid

    dead = consume_all(kafka_bootstrap, [f"{topic}.dlq"], 10)
    assert len(dead) == 10
    by_id = {headers_of(m)["ktf-correlation-id"]: m for m in dead}
    assert set(by_id) == set(poison)
    for cid, msg in by_id.items():
        hdrs = headers_of(msg)
        assert msg.value() == poison[cid], "dead letter must keep the original bytes"
        assert msg.key() == b"poison"
        assert hdrs["ktf-error-type"] == "DecodeError"
        assert hdrs["ktf-original-topic"] == topic
        assert f"@{hdrs['ktf-original-offset']}" in hdrs["ktf-error-message"]
        assert hdrs["ktf-consumer-group"] == settings.group_id
        assert int(hdrs["ktf-failed-at"]) > 0
    # Error replies tell callers about the poison records too.
    errors = [headers_of(m) for m in replies if headers_of(m)["ktf-status"] == "error"]
    assert {e["ktf-correlation-id"] for e in errors} == set(poison)


def test_restarted_worker_resumes_from_committed_offsets(kafka_bootstrap: str, unique: str) -> None:
    topic = f"{unique}.wc"
    calls: Counter[str] = Counter()
    registry = make_registry(topic, calls)
    settings = settings_for(kafka_bootstrap, unique)
    ensure(settings, registry)

    def batch(start: int, n: int) -> list[tuple[bytes | None, bytes | None, dict[str, str]]]:
        return [
            (str(i).encode(), encode(f"text {i}"), {"ktf-task-id": f"t{i}"})
            for i in range(start, start + n)
        ]

    produce(kafka_bootstrap, topic, batch(0, 500))
    asyncio.run(run_until(Worker(settings, registry, schemas=STORE), lambda: len(calls) >= 500, 60))
    offsets = committed(kafka_bootstrap, settings.group_id, topic, 3)
    assert sum(offsets.values()) == 500, f"graceful stop must commit everything: {offsets}"

    produce(kafka_bootstrap, topic, batch(500, 500))
    asyncio.run(
        run_until(Worker(settings, registry, schemas=STORE), lambda: len(calls) >= 1000, 60)
    )
    rerun = {task_id: n for task_id, n in calls.items() if n > 1}
    assert len(calls) == 1000
    assert rerun == {}, f"tasks finished before the restart ran again: {sorted(rerun)[:5]}"


def _ktf_worker(args: list[str], env_extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, **env_extra)
    return subprocess.run(
        [sys.executable, "-m", "framework.cli", "worker", "--metrics-port", "0", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=ROOT,
    )


def test_worker_refuses_to_start_when_a_handler_module_does_not_import(tmp_path: Path) -> None:
    (tmp_path / "broken_plugin.py").write_text("import not_a_module_anywhere\n")
    result = _ktf_worker(["--handlers", "broken_plugin"], {"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "broken_plugin" in lines[0] and "does not import" in lines[0]
    assert str(tmp_path / "broken_plugin.py") in lines[0]


def test_worker_refuses_to_start_when_two_handlers_claim_one_topic(tmp_path: Path) -> None:
    for name in ("plugin_a", "plugin_b"):
        (tmp_path / f"{name}.py").write_text(
            "from framework import handler\n"
            "@handler(topic='tasks.same', schema='ktf.examples.WordCountTask')\n"
            f"async def {name}_fn(task, ctx):\n    return None\n"
        )
    result = _ktf_worker(["--handlers", "plugin_a,plugin_b"], {"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "'tasks.same'" in lines[0] and "plugin_a" in lines[0] and "plugin_b" in lines[0]


def test_worker_refuses_to_start_when_a_schema_file_does_not_parse(tmp_path: Path) -> None:
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    (schemas / "Broken.avsc").write_text('{"type": "record", "name": "Broken", "fields": [')
    result = _ktf_worker(["--handlers", "handlers.examples", "--schemas-dir", str(schemas)], {})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(schemas / "Broken.avsc") in lines[0]
