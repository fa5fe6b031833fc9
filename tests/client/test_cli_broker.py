"""``ktf send``, ``ktf call`` and ``ktf tail`` against the real broker."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest

from framework import headers as h
from framework.cli import main
from framework.kafka.admin import KafkaAdmin, TopicSpec
from framework.serde import SchemaStore
from tests.client.conftest import (
    create_topics,
    read_topic,
    running_worker,
    settings_for,
    word_count_registry,
)

pytestmark = pytest.mark.broker

SCHEMA = ["--schema", "ktf.examples.WordCountTask"]


def _topic(bootstrap: str, unique: str) -> str:
    topic = f"{unique}.tasks"
    settings = settings_for(bootstrap, unique)
    KafkaAdmin(settings).ensure_topics([TopicSpec(topic, 1, 1)])
    return topic


def test_send_wrong_field_type_prints_one_line_and_sends_nothing(
    kafka_bootstrap: str, unique: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = _topic(kafka_bootstrap, unique)
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text('{"text": "fine"}\n{"text": 7}\n{"text": "also fine"}\n')
    code = main(
        ["send", topic, "--file", str(tasks), *SCHEMA, "--bootstrap-servers", kafka_bootstrap]
    )
    err = capsys.readouterr().err.splitlines()
    assert code == 1
    bad = [line for line in err if line.startswith(f"{tasks}:")]
    assert bad == [
        f"{tasks}:2: ktf.examples.WordCountTask: field 'text': expected string, got int 7"
    ]
    assert "nothing sent" in err[-1]
    assert read_topic(kafka_bootstrap, topic, expect=1, timeout=3) == []


def test_send_skip_invalid_sends_only_the_valid_lines(
    kafka_bootstrap: str, unique: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = _topic(kafka_bootstrap, unique)
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text('{"text": "one"}\n{"text": 7}\n\n{"text": "three", "lowercase": false}\n{\n')
    code = main(
        [
            "send",
            topic,
            "--file",
            str(tasks),
            "--skip-invalid",
            "--key",
            "k",
            "--header",
            "x-origin=test",
            *SCHEMA,
            "--bootstrap-servers",
            kafka_bootstrap,
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0
    assert f"{tasks}:2:" in err and f"{tasks}:5: invalid JSON" in err
    ids = out.split()
    records = read_topic(kafka_bootstrap, topic, expect=2)
    assert [h.to_dict(m.headers())[h.TASK_ID] for m in records] == ids
    assert all(h.to_dict(m.headers())["x-origin"] == "test" for m in records)
    assert all(m.key() == b"k" for m in records)


def test_send_json_then_tail_prints_decoded_records_with_headers(
    kafka_bootstrap: str, unique: str, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = _topic(kafka_bootstrap, unique)
    boot = ["--bootstrap-servers", kafka_bootstrap]
    assert (
        main(["send", topic, "--json", '{"text": "hi there"}', "--deadline", "5m", *SCHEMA, *boot])
        == 0
    )
    task_id = capsys.readouterr().out.strip()
    assert main(["tail", topic, "--from-beginning", "--count", "1", *SCHEMA, *boot]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["value"] == {"text": "hi there", "lowercase": True}
    assert record["headers"][h.TASK_ID] == task_id
    assert record["headers"][h.ATTEMPT] == "1"
    assert h.DEADLINE in record["headers"] and h.TRACEPARENT in record["headers"]


def test_call_prints_the_reply(
    kafka_bootstrap: str, unique: str, store: SchemaStore, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = f"{unique}.tasks"
    registry = word_count_registry(topic)
    settings = settings_for(kafka_bootstrap, unique)
    create_topics(settings, registry)
    ready, stop = threading.Event(), threading.Event()

    async def serve() -> None:
        async with running_worker(settings, registry, store):
            ready.set()
            # The stop flag is a threading.Event set from the test thread.
            await asyncio.to_thread(stop.wait, 60)

    thread = threading.Thread(target=asyncio.run, args=(serve(),))
    thread.start()
    try:
        assert ready.wait(30)
        args = [
            "call",
            topic,
            "--json",
            '{"text": "a b"}',
            "--timeout",
            "30",
            "--schema",
            "ktf.examples.WordCountTask",
            "--result-schema",
            "ktf.examples.WordCountResult",
            "--client-id",
            unique,
            "--bootstrap-servers",
            kafka_bootstrap,
        ]
        assert main(args) == 0
        reply = json.loads(capsys.readouterr().out)
        assert reply["status"] == "ok"
        assert reply["result"] == {"words": 2, "distinct": 2, "top": [reply["task_id"]]}
        args[3] = '{"text": "fail"}'
        assert main(args) == 1
        failed = json.loads(capsys.readouterr().out)
        assert (failed["status"], failed["error_type"]) == ("error", "ValueError")
    finally:
        stop.set()
        thread.join(30)
