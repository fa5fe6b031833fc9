"""Tasks produced by a Java service (Apache Avro + kafka-clients, examples/java) are
processed by the Python worker and replied to."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest

from framework import headers as h
from framework.serde import SchemaStore
from tests.client.conftest import (
    create_topics,
    read_topic,
    running_worker,
    settings_for,
    word_count_registry,
)

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ROOT / "examples" / "java"
JAR = PROJECT / "target" / "ktf-java-producer.jar"

pytestmark = [
    pytest.mark.broker,
    pytest.mark.skipif(
        shutil.which("java") is None or shutil.which("mvn") is None,
        reason="needs java and mvn on PATH",
    ),
]


@pytest.fixture(scope="module")
def java_jar() -> Path:
    """Build the example with Maven (dependencies come from ~/.m2 or Maven Central)."""
    build = subprocess.run(
        ["mvn", "-q", "-B", "package"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert build.returncode == 0, f"mvn package failed:\n{build.stdout}\n{build.stderr}"
    assert JAR.is_file()
    return JAR


@pytest.mark.parametrize("wire", ["avro", "single-object"])
def test_java_produced_tasks_are_processed_and_replied(
    java_jar: Path, kafka_bootstrap: str, unique: str, store: SchemaStore, wire: str
) -> None:
    topic = f"{unique}.tasks"
    reply_topic = f"{unique}.tasks.reply"
    registry = word_count_registry(topic, wire=wire)
    settings = settings_for(kafka_bootstrap, unique)
    create_topics(settings, registry)
    n = 25

    async def main() -> list[str]:
        async with running_worker(settings, registry, store):
            proc = await asyncio.create_subprocess_exec(
                "java",
                "-jar",
                str(java_jar),
                "-bootstrap",
                kafka_bootstrap,
                "-topic",
                topic,
                "-count",
                str(n),
                "-schema",
                str(ROOT / "schemas" / "examples" / "WordCountTask.avsc"),
                "-reply-to",
                reply_topic,
                "-wire",
                wire,
                "-deadline-ms",
                "120000",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
            assert proc.returncode == 0, err.decode()
            task_ids = out.decode().split()
            assert len(task_ids) == n
            replies = await asyncio.to_thread(read_topic, kafka_bootstrap, reply_topic, n, 60.0)
            return [task_ids, replies]  # type: ignore[list-item]

    task_ids, replies = asyncio.run(main())
    by_id = {h.to_dict(m.headers())[h.TASK_ID]: m for m in replies}
    assert set(by_id) == set(task_ids)
    result_codec = store.codec("ktf.examples.WordCountResult", wire)  # type: ignore[arg-type]
    for task_id in task_ids:
        msg = by_id[task_id]
        hdrs = h.to_dict(msg.headers())
        assert hdrs[h.STATUS] == "ok", hdrs
        assert hdrs[h.CORRELATION_ID] == task_id
        result = result_codec.decode(msg.value())
        # "java task i counts the words of task i": 9 words, 7 distinct
        assert (result["words"], result["distinct"]) == (9, 7)
