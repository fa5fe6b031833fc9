"""Hypothesis-fuzzed input against a running worker: random bytes, mutated valid Avro,
random and malformed headers, oversized values. Contract: every record is replied or
dead-lettered with a cause (`ktf-error-type`), the worker stays alive, nothing is stuck.
"""

from __future__ import annotations

import itertools
import random
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from framework import headers as h
from tests.reliability.harness import (
    TASK,
    WorkerProc,
    create_topics,
    wait_all_committed,
    worker_env,
)

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.timeout(300)]

EXAMPLES = 60
CONTRACT_HEADERS = [
    h.TASK_ID, h.ATTEMPT, h.DEADLINE, h.NOT_BEFORE, h.CORRELATION_ID, h.TRACEPARENT,
    h.TRACESTATE, "x-anything", "",
]  # fmt: skip
_keys = itertools.count()

header_value = st.one_of(
    st.none(),
    st.binary(max_size=64),
    st.text(max_size=32).map(str.encode),
    st.sampled_from([b"-1", b"0", b"abc", b"99999999999999999999999", b"\xff\xfe", b"1.5", b""]),
)
headers = st.lists(st.tuples(st.sampled_from(CONTRACT_HEADERS), header_value), max_size=6)


def _mutate(data: bytes, rnd: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rnd.randint(1, 4)):
        op = rnd.randint(0, 2)
        if op == 0 and out:
            out[rnd.randrange(len(out))] ^= 1 << rnd.randrange(8)
        elif op == 1 and out:
            del out[rnd.randrange(len(out)) :]
        else:
            out += rnd.randbytes(rnd.randint(1, 8))
    return bytes(out)


valid = st.builds(
    lambda text, lower: TASK.encode({"text": text, "lowercase": lower}),
    st.text(max_size=40),
    st.booleans(),
)
values = st.one_of(
    st.binary(max_size=200),  # random bytes
    valid,  # valid Avro
    st.tuples(valid, st.randoms(use_true_random=False)).map(lambda vr: _mutate(vr[0], vr[1])),
    st.integers(100_000, 600_000).map(lambda n: random.Random(n).randbytes(n)),  # oversized
)
records = st.lists(st.tuples(values, headers), min_size=1, max_size=6)


class Outcomes:
    """Replies and dead letters by record key, read continuously."""

    def __init__(self, bootstrap: str, topics: list[str]) -> None:
        self.by_key: dict[bytes, list[tuple[str, dict[str, str]]]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._c = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": "fuzz-reader", "enable.auto.commit": False}
        )
        md = self._c.list_topics(timeout=30)
        self._c.assign([TopicPartition(t, p, 0) for t in topics for p in md.topics[t].partitions])
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for m in self._c.consume(200, 0.2):
                if m.error() is not None:
                    continue
                kind = "dlq" if m.topic().endswith(".dlq") else "reply"
                with self._lock:
                    self.by_key.setdefault(m.key() or b"", []).append(
                        (kind, h.to_dict(m.headers()))
                    )

    def get(self, key: bytes) -> list[tuple[str, dict[str, str]]]:
        with self._lock:
            return list(self.by_key.get(key, []))

    def close(self) -> None:
        self._stop.set()
        self._t.join(10)
        self._c.close()


@pytest.fixture(scope="module")
def fuzz_target(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    run = f"fuzz-{time.time_ns() % 10**9}"
    topic, group = f"{run}.tasks", f"{run}-g"
    create_topics(kafka_bootstrap, [topic, f"{topic}.reply", f"{topic}.dlq"], 2, 1)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    log = tmp_path_factory.mktemp("fuzz") / "worker.log"
    worker = WorkerProc(
        "w", worker_env(kafka_bootstrap, topic, group, "w", KTF_METRICS_PORT=str(port)), log
    )
    worker.start()
    outcomes = Outcomes(kafka_bootstrap, [f"{topic}.reply", f"{topic}.dlq"])
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "message.max.bytes": 2_000_000})
    try:
        yield {
            "topic": topic, "group": group, "worker": worker, "outcomes": outcomes,
            "producer": producer, "port": port, "bootstrap": kafka_bootstrap, "log": log,
        }  # fmt: skip
    finally:
        outcomes.close()
        worker.stop()


def _outcome_ok(found: list[tuple[str, dict[str, str]]]) -> bool:
    for kind, hdrs in found:
        if kind == "reply" and hdrs.get(h.STATUS):
            return True
        if kind == "dlq" and hdrs.get(h.ERROR_TYPE):
            return True
    return False


def test_fuzzed_records_are_all_replied_or_dead_lettered_and_the_worker_survives(
    fuzz_target: dict[str, Any],
) -> None:
    t = fuzz_target
    producer: Producer = t["producer"]
    outcomes: Outcomes = t["outcomes"]

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(records)
    def one_batch(batch: list[tuple[bytes, list[tuple[str, bytes | None]]]]) -> None:
        keys = []
        for value, hdrs in batch:
            key = f"fz-{next(_keys)}".encode()
            keys.append(key)
            producer.produce(t["topic"], value=value, key=key, headers=hdrs)
        assert producer.flush(30) == 0
        deadline = time.monotonic() + 30
        pending = set(keys)
        while pending and time.monotonic() < deadline:
            pending = {k for k in pending if not _outcome_ok(outcomes.get(k))}
            time.sleep(0.05)
        assert t["worker"].proc.poll() is None, "the worker died"
        assert not pending, f"no reply and no dead letter with a cause for {sorted(pending)}"

    one_batch()
    kinds: dict[str, int] = {}
    for found in outcomes.by_key.values():
        for kind, hdrs in found:
            label = kind if kind == "reply" else f"dlq:{hdrs.get(h.ERROR_TYPE)}"
            kinds[label] = kinds.get(label, 0) + 1
    print(f"\nfuzz: {len(outcomes.by_key)} records, outcomes {dict(sorted(kinds.items()))}")
    with urllib.request.urlopen(f"http://127.0.0.1:{t['port']}/healthz", timeout=5) as r:
        assert r.status == 200
    left = wait_all_committed(t["bootstrap"], t["group"], t["topic"], timeout=30)
    assert left == {}, f"partitions stuck: {left}"
