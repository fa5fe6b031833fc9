"""The Confluent wire format against a real registry (Apicurio Registry 3.x, ccompat API).

The mock client of the other serde tests proves our framing; these prove a real
registry server agrees with it: ids it hands out, 404s for unknown ids, lookups
without registering, and a worker decoding tasks / encoding replies through it.

The registry is the one at ``KTF_SCHEMA_REGISTRY_URL`` when that is set; otherwise
the dev registry (``ktf dev registry up``) is started once per session and stopped
at the end if this session started it. When ``java`` and ``mvn`` are on PATH and
it does not start, the tests fail (they do not skip): the registry path must not
silently go untested.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
import urllib.request
from collections.abc import Callable, Iterator
from io import BytesIO
from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from fastavro import schemaless_writer

from framework.config import Settings
from framework.errors import FrameworkError
from framework.registry import HandlerRegistry, handler, spec_of
from framework.runtime import worker as worker_module
from framework.runtime.worker import Worker
from framework.serde import RecordDecodeError, SchemaStore, TopicCodecs
from framework.serde.codec import Codec
from framework.serde.confluent import ConfluentCodec, schema_json
from tests._kafka import consume_all, create_topics, produce

ORDER = "ktf.test.Order"
MONEY = "ktf.test.Money"

V1_TASK = {
    "id": "o-0",
    "total": {"amount": 99, "currency": "USD"},
    "status": "PAID",
    "legacy": "dropped later",
}
V1_AS_V2 = {
    "id": "o-0",
    "total": {"amount": 99, "currency": "USD"},
    "status": "PAID",
    "note": "",
    "tags": [],
}
V1_AS_CURRENT = {**V1_AS_V2, "priority": 0, "coupon": None}

TASK_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "RegistryTask",
    "namespace": "ktf.tests.registry",
    "fields": [{"name": "n", "type": "long"}, {"name": "word", "type": "string"}],
}
RESULT_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "RegistryResult",
    "namespace": "ktf.tests.registry",
    "fields": [{"name": "n", "type": "long"}, {"name": "upper", "type": "string"}],
}


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/subjects", timeout=5) as resp:
            return int(resp.status) == 200
    except OSError:
        return False


@pytest.fixture(scope="session")
def registry_url() -> Iterator[str]:
    """Confluent-compatible base url of a real, running schema registry."""
    configured = os.environ.get("KTF_SCHEMA_REGISTRY_URL")
    if configured:
        if not _answers(configured):
            pytest.fail(f"KTF_SCHEMA_REGISTRY_URL={configured} is set but no registry answers")
        yield configured
        return
    missing = [tool for tool in ("java", "mvn") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"no real registry: {' and '.join(missing)} not on PATH")
    from framework.devkafka.registry import registry_down, registry_status, registry_up

    started_here = not registry_status().running
    t0 = time.monotonic()
    try:
        url = registry_up(progress=lambda line: print(f"[dev registry] {line}"), timeout=180.0)
    except FrameworkError as exc:
        pytest.fail(f"the dev registry did not start: {exc}")
    print(f"[dev registry] up in {time.monotonic() - t0:.1f}s")
    try:
        yield url
    finally:
        if started_here and not os.environ.get("KTF_KEEP_REGISTRY"):
            registry_down()


@pytest.fixture
def client(registry_url: str) -> Iterator[SchemaRegistryClient]:
    with SchemaRegistryClient({"url": registry_url}) as sr:
        yield sr


CodecFactory = Callable[..., Codec]


@pytest.fixture
def confluent(store: SchemaStore, registry_url: str) -> Iterator[CodecFactory]:
    """``store.codec(ref, wire="confluent", registry={"url": <real registry>}, **kw)``.

    Each codec builds its own HTTP client from the dict; ConfluentCodec has no
    close(), so the test closes them (an unclosed socket is a ResourceWarning,
    an error under this suite's warning filter).
    """
    made: list[ConfluentCodec] = []

    def make(ref: Any, **kw: Any) -> Codec:
        codec = store.codec(ref, wire="confluent", registry={"url": registry_url}, **kw)
        assert isinstance(codec, ConfluentCodec)
        made.append(codec)
        return codec

    yield make
    close_clients(made)


def close_clients(codecs: list[ConfluentCodec]) -> None:
    for codec in codecs:
        codec.client.close()


def avro_body(schema: Any, record: Any) -> bytes:
    out = BytesIO()
    schemaless_writer(out, schema, record)
    return out.getvalue()


def framed(schema_id: int, body: bytes) -> bytes:
    return b"\x00" + schema_id.to_bytes(4, "big") + body


def schema_id_of(data: bytes) -> int:
    return int.from_bytes(data[1:5], "big")


# -- codec against the real registry ------------------------------------------------


def test_v1_writer_registered_in_real_registry_reads_with_v2_and_current_readers(
    store: SchemaStore, client: SchemaRegistryClient, confluent: CodecFactory, unique: str
) -> None:
    subject = f"{unique}-value"
    v1, v2 = store.history(ORDER)[0], store.history(ORDER)[1]
    v1_id = client.register_schema(subject, Schema(schema_json(v1.parsed), "AVRO"))
    data = framed(v1_id, avro_body(v1.parsed, V1_TASK))

    v2_reader = confluent(v2.path)
    assert v2_reader.decode(data) == V1_AS_V2
    current = confluent(ORDER, subject=subject)
    assert current.decode(data) == V1_AS_CURRENT

    # Encoding registers the current schema as a new version with its own id ...
    new = current.encode({**V1_AS_CURRENT, "status": "SHIPPED", "priority": 3})
    assert schema_id_of(new) != v1_id
    assert client.get_versions(subject) == [1, 2]
    assert client.get_latest_version(subject).schema_id == schema_id_of(new)
    # ... and old and new records decode side by side.
    assert current.decode(new)["priority"] == 3
    assert current.decode(data) == V1_AS_CURRENT


def test_real_registry_unknown_schema_id_is_a_non_retriable_poison_record(
    confluent: CodecFactory,
) -> None:
    codec = confluent(MONEY)
    with pytest.raises(RecordDecodeError) as info:
        codec.decode(framed(2_000_000_000, b"\x02\x06EUR"))
    assert info.value.reason == "unknown-schema-id"
    assert not info.value.retriable
    assert "schema id 2000000000" in str(info.value)


def test_without_auto_register_encodes_with_the_id_registered_elsewhere(
    store: SchemaStore, client: SchemaRegistryClient, confluent: CodecFactory, unique: str
) -> None:
    subject = f"{unique}-value"
    lookup_only = confluent(MONEY, subject=subject, auto_register=False)
    with pytest.raises(FrameworkError, match=f"cannot find the schema under subject '{subject}'"):
        lookup_only.encode({"amount": 1, "currency": "EUR"})
    registered = client.register_schema(
        subject, Schema(schema_json(store.resolve(MONEY)[1]), "AVRO")
    )
    fresh = confluent(MONEY, subject=subject, auto_register=False)
    data = fresh.encode({"amount": 1250, "currency": "EUR"})
    assert schema_id_of(data) == registered
    assert data[5:].hex(" ").upper() == "C4 13 06 45 55 52"  # the docs' Avro body


# -- a worker with wire_format="confluent" on the real broker --------------------------


@pytest.mark.broker
def test_worker_decodes_confluent_tasks_and_encodes_replies_via_real_registry(
    store: SchemaStore,
    client: SchemaRegistryClient,
    confluent: CodecFactory,
    registry_url: str,
    kafka_bootstrap: str,
    unique: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    topic = f"{unique}.tasks"
    reply = f"{topic}.reply"
    create_topics(kafka_bootstrap, [topic, reply, f"{topic}.dlq"], partitions=1)
    producer_codec = confluent(TASK_SCHEMA, subject=f"{topic}-value")
    words = ["alpha", "beta", "gamma"]
    produce(
        kafka_bootstrap,
        topic,
        [(b"k", producer_codec.encode({"n": n, "word": w}), {}) for n, w in enumerate(words)],
    )
    seen: list[dict[str, Any]] = []
    all_seen = asyncio.Event()

    @handler(topic=topic, schema=TASK_SCHEMA, result_schema=RESULT_SCHEMA, wire_format="confluent")
    async def shout(task: dict[str, Any], ctx: Any) -> dict[str, Any]:
        seen.append(task)
        if len(seen) == len(words):
            all_seen.set()
        return {"n": task["n"], "upper": task["word"].upper()}

    spec = spec_of(shout)
    assert spec is not None
    settings = Settings(
        bootstrap_servers=kafka_bootstrap,
        group_id=f"{unique}-g",
        metrics_port=0,
        commit_interval=0.2,
        session_timeout_ms=6000,
        log_level="WARNING",
        schema_registry_url=registry_url,
    )
    # Record the codecs the worker builds; it must close their registry clients itself
    # (an unclosed client raises ResourceWarning, an error in this suite).
    built: list[ConfluentCodec] = []
    real_build = worker_module.build_codecs

    def recording_build(*args: Any) -> dict[str, TopicCodecs]:
        codecs = real_build(*args)
        for pair in codecs.values():
            built.extend(c for c in (pair.task, pair.result) if isinstance(c, ConfluentCodec))
        return codecs

    monkeypatch.setattr(worker_module, "build_codecs", recording_build)

    async def main() -> None:
        async with Worker(settings, HandlerRegistry([spec]), schemas=store):
            await asyncio.wait_for(all_seen.wait(), 30)

    asyncio.run(main())
    assert all(c._client is None for c in built), "worker left registry clients open"
    assert len(built) == 2  # task and result codec, both in the Confluent format
    assert sorted(t["word"] for t in seen) == words

    replies = [m.value() or b"" for m in consume_all(kafka_bootstrap, [reply], len(words), 30)]
    reader = confluent(RESULT_SCHEMA)
    results = sorted((reader.decode(v) for v in replies), key=lambda r: r["n"])
    assert results == [{"n": n, "upper": w.upper()} for n, w in enumerate(words)]
    # The worker registered the result schema under the reply topic's subject.
    latest = client.get_latest_version(f"{reply}-value")
    assert {schema_id_of(v) for v in replies} == {latest.schema_id}
