"""Cancellation across nodes: ``send_cancel`` here stops a task in another worker process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from framework import headers as h
from framework.config import Settings
from framework.kafka.producer import KafkaProducer
from framework.registry import load_handlers
from framework.routing.control import send_cancel
from tests.routing.kafka_helpers import Reader, ensure_topics, hdrs, produce, task

pytestmark = pytest.mark.broker

ROOT = Path(__file__).resolve().parents[2]


def _wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def test_cancelling_a_30s_task_in_another_process_takes_effect_within_2s(
    kafka_bootstrap: str, unique: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = f"{unique}.tasks"
    marker = tmp_path / "started.txt"
    marker.touch()
    env = dict(
        os.environ,
        KTF_BOOTSTRAP_SERVERS=kafka_bootstrap,
        KTF_GROUP_ID=f"{unique}-g",
        KTF_METRICS_PORT="0",
        KTF_TEST_TOPIC=topic,
        KTF_TEST_MARKER=str(marker),
        KTF_DRAIN_TIMEOUT="2",
        PYTHONPATH=str(ROOT),
    )
    monkeypatch.setenv("KTF_TEST_TOPIC", topic)
    sys.modules.pop("tests.routing.handlers_fixture", None)
    ensure_topics(kafka_bootstrap, load_handlers(["tests.routing.handlers_fixture"]))
    replies = Reader(kafka_bootstrap, f"{topic}.reply")
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [str(ROOT / ".venv/bin/ktf"), "worker", "--handlers", "tests.routing.handlers_fixture"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    producer = KafkaProducer(Settings(bootstrap_servers=kafka_bootstrap))
    producer.start()
    try:
        produce(kafka_bootstrap, topic, [(b"k", task("30"), {h.TASK_ID: f"{unique}-long"})])
        _wait_for(lambda: f"{unique}-long" in marker.read_text(), 60, "the task to start")
        started = time.monotonic()
        send_cancel(producer, f"{unique}-long", "test")
        replies.wait_for(1, timeout=10)
        took = time.monotonic() - started
        reply = hdrs(replies.records[0])
        assert reply[h.TASK_ID] == f"{unique}-long"
        assert reply[h.STATUS] == h.STATUS_CANCELLED
        assert reply[h.ERROR_TYPE] == "TaskCancelled"
        assert took < 2.0, f"cancellation took {took:.2f}s"

        # The same task arriving later is skipped while the cancellation is remembered.
        produce(kafka_bootstrap, topic, [(b"k", task("30"), {h.TASK_ID: f"{unique}-long"})])
        replies.wait_for(2, timeout=10)
        assert hdrs(replies.records[1])[h.STATUS] == h.STATUS_CANCELLED
        assert marker.read_text().count(f"{unique}-long") == 1
        assert worker.poll() is None, "the worker process must keep running"
    finally:
        producer.close(2.0)
        replies.close()
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(5)
        log.close()
    assert worker.returncode == 0, (tmp_path / "worker.log").read_text()[-2000:]
