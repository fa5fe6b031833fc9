"""TaskClient and SyncTaskClient against the real broker and an in-process worker."""

from __future__ import annotations

import asyncio
import time

import pytest

from framework import headers as h
from framework.client import (
    CallExpired,
    CallTimeout,
    SyncTaskClient,
    TaskClient,
    TaskFailed,
)
from framework.errors import ConfigError, EncodeError, TaskExpired
from framework.serde import SchemaStore
from tests.client.conftest import (
    create_topics,
    read_topic,
    running_worker,
    settings_for,
    word_count_registry,
    word_count_setup,
)

pytestmark = pytest.mark.broker


def test_call_returns_the_decoded_result(
    kafka_bootstrap: str, unique: str, store: SchemaStore
) -> None:
    topic, registry, settings = word_count_setup(kafka_bootstrap, unique)

    async def main() -> None:
        async with (
            running_worker(settings, registry, store),
            TaskClient(settings, handlers=registry, store=store) as client,
        ):
            reply = await client.call(topic, {"text": "a b a"}, timeout=30)
            assert reply.ok and reply.status == h.STATUS_OK
            assert reply.result == {"words": 3, "distinct": 2, "top": [reply.task_id]}
            assert reply.topic == client.reply_topic == f"ktf.replies.{unique}"

    asyncio.run(main())


def test_ten_thousand_concurrent_calls_get_their_own_replies(
    kafka_bootstrap: str, unique: str, store: SchemaStore
) -> None:
    topic, registry, settings = word_count_setup(kafka_bootstrap, unique)
    n = 10_000

    async def main() -> None:
        async with (
            running_worker(settings, registry, store),
            TaskClient(settings, handlers=registry, store=store) as client,
        ):
            started = time.monotonic()
            # Each task has a distinct word count and a distinct task id, and the handler
            # echoes the id: a reply handed to the wrong call fails both checks.
            replies = await asyncio.gather(
                *(
                    client.call(
                        topic,
                        {"text": " ".join(["w"] * (i % 97 + 1)) + f" {i}"},
                        task_id=f"{unique}-{i}",
                        timeout=120,
                    )
                    for i in range(n)
                )
            )
            elapsed = time.monotonic() - started
            for i, reply in enumerate(replies):
                assert reply.task_id == f"{unique}-{i}"
                assert reply.result["top"] == [f"{unique}-{i}"]
                assert reply.result["words"] == i % 97 + 2
            assert client.stats["pending_calls"] == 0
            print(f"{n} concurrent calls in {elapsed:.1f}s")

    asyncio.run(main())


def test_failed_task_raises_task_failed_with_the_error_headers(
    kafka_bootstrap: str, unique: str, store: SchemaStore
) -> None:
    topic, registry, settings = word_count_setup(kafka_bootstrap, unique)

    async def main() -> None:
        async with (
            running_worker(settings, registry, store),
            TaskClient(settings, handlers=registry, store=store) as client,
        ):
            with pytest.raises(TaskFailed) as failed:
                await client.call(topic, {"text": "fail"}, timeout=30)
            assert failed.value.error_type == "ValueError"
            assert failed.value.error_message == "asked to fail"
            assert failed.value.reply is not None and failed.value.reply.status == "error"
            with pytest.raises(TaskFailed) as rejected:
                await client.call(topic, {"text": "reject"}, timeout=30)
            assert rejected.value.error_type == "Reject"

    asyncio.run(main())


def test_past_deadline_raises_task_expired(
    kafka_bootstrap: str, unique: str, store: SchemaStore
) -> None:
    topic, registry, settings = word_count_setup(kafka_bootstrap, unique)

    async def main() -> None:
        async with (
            running_worker(settings, registry, store),
            TaskClient(settings, handlers=registry, store=store) as client,
        ):
            past = int(time.time() * 1000) - 1_000
            with pytest.raises(CallExpired) as expired:
                await client.call(topic, {"text": "late"}, deadline=past, timeout=30)
            assert isinstance(expired.value, TaskExpired)

    asyncio.run(main())


def test_call_without_worker_times_out_and_forgets_the_call(
    kafka_bootstrap: str, unique: str, store: SchemaStore
) -> None:
    topic, registry, settings = word_count_setup(kafka_bootstrap, unique)

    async def main() -> None:
        async with TaskClient(settings, handlers=registry, store=store) as client:
            started = time.monotonic()
            with pytest.raises(CallTimeout, match=r"within 1\.0s"):
                await client.call(topic, {"text": "nobody"}, timeout=1.0)
            assert time.monotonic() - started < 5
            assert client.stats["pending_calls"] == 0

    asyncio.run(main())


def test_foreign_replies_on_a_shared_reply_topic_are_ignored(
    kafka_bootstrap: str, unique: str, store: SchemaStore
) -> None:
    topic, registry, settings = word_count_setup(kafka_bootstrap, unique)

    async def main() -> None:
        async with (
            running_worker(settings, registry, store),
            TaskClient(settings, handlers=registry, store=store) as one,
            TaskClient(settings, handlers=registry, store=store) as two,
        ):
            assert one.reply_topic == two.reply_topic
            a, b = await asyncio.gather(
                one.call(topic, {"text": "one"}, timeout=30),
                two.call(topic, {"text": "two two"}, timeout=30),
            )
            assert (a.result["words"], b.result["words"]) == (1, 2)
            # Each saw the other's reply on the shared topic and dropped it.
            await asyncio.sleep(0.3)
            assert one.stats["ignored_replies"] + two.stats["ignored_replies"] >= 1

    asyncio.run(main())


def test_submit_validates_before_sending_and_names_the_field(
    kafka_bootstrap: str, unique: str, store: SchemaStore
) -> None:
    topic = f"{unique}.tasks"
    registry = word_count_registry(topic)
    settings = settings_for(kafka_bootstrap, unique)
    create_topics(settings, registry, partitions=1)

    async def main() -> None:
        async with TaskClient(
            settings, schemas={topic: "ktf.examples.WordCountTask"}, store=store
        ) as client:
            with pytest.raises(EncodeError, match="field 'text'"):
                await client.submit(topic, {"text": 42})
            with pytest.raises(EncodeError, match=r"payload 1: .*field 'lowercase'"):
                await client.submit_many(topic, [{"text": "ok"}, {"text": "x", "lowercase": 1}])
            with pytest.raises(ConfigError, match="no schema known for topic"):
                await client.submit("elsewhere", {"text": "x"})
            ids = await client.submit_many(topic, [{"text": f"t{i}"} for i in range(50)])
            tid = await client.submit(topic, {"text": "last"}, key="k", deadline=60.0)
            return [*ids, tid]

    ids = asyncio.run(main())
    records = read_topic(kafka_bootstrap, topic, expect=51)
    assert len(records) == 51  # the invalid batch sent nothing
    assert [h.to_dict(m.headers())[h.TASK_ID] for m in records] == ids
    last = h.to_dict(records[-1].headers())
    assert records[-1].key() == b"k"
    assert int(last[h.DEADLINE]) > time.time() * 1000
    assert last[h.ATTEMPT] == "1"


def test_sync_client_submits_and_calls(
    kafka_bootstrap: str, unique: str, store: SchemaStore
) -> None:
    topic, registry, settings = word_count_setup(kafka_bootstrap, unique)

    async def serve(stop: asyncio.Event) -> None:
        async with running_worker(settings, registry, store):
            await stop.wait()

    async def main() -> None:
        stop = asyncio.Event()
        worker = asyncio.create_task(serve(stop))
        try:

            def use_sync() -> None:
                with SyncTaskClient(settings, handlers=registry, store=store) as client:
                    assert len(client.submit(topic, {"text": "fire and forget"})) == 32
                    reply = client.call(topic, {"text": "x y"}, timeout=30)
                    assert reply.result["words"] == 2
                    with pytest.raises(TaskFailed):
                        client.call(topic, {"text": "fail"}, timeout=30)

            await asyncio.to_thread(use_sync)
        finally:
            stop.set()
            await worker

    asyncio.run(main())
