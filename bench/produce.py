"""Producing throughput: TaskClient.submit_many against a hand-written produce loop.

Both sides run in the same process against the same broker, with the same librdkafka
producer configuration (``Settings.librdkafka("producer")``: idempotent, acks=all,
lz4, linger 5 ms), the same ``ktf.examples.WordCountTask`` records and a final flush:

- raw: ``fastavro.schemaless_writer`` + ``confluent_kafka.Producer.produce`` with the
  two headers a task cannot do without (``ktf-task-id`` from uuid4, ``ktf-attempt``);
- client: ``TaskClient.submit_many`` in batches: validation against the schema,
  encoding, task id, attempt, a new ``traceparent`` per task, delivery accounting.

The runs alternate (raw, client, raw, client, ...) and the best of each is reported,
so a slow first run (connection set-up, topic metadata) does not skew the ratio.

    .venv/bin/python bench/produce.py [--records 200000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from io import BytesIO
from typing import Any

import confluent_kafka
from fastavro import schemaless_writer

from framework import Settings, TaskClient
from framework.kafka.admin import KafkaAdmin, TopicSpec
from framework.serde import SchemaStore

SCHEMA = "ktf.examples.WordCountTask"


def payloads(n: int) -> list[dict[str, Any]]:
    return [
        {"text": f"the quick brown fox {i} jumps over the lazy dog", "lowercase": True}
        for i in range(n)
    ]


def raw_loop(settings: Settings, topic: str, schema: Any, records: list[dict[str, Any]]) -> float:
    producer = confluent_kafka.Producer(settings.librdkafka("producer"))
    started = time.perf_counter()
    for record in records:
        buf = BytesIO()
        schemaless_writer(buf, schema, record)
        headers = [("ktf-task-id", uuid.uuid4().hex.encode()), ("ktf-attempt", b"1")]
        while True:
            try:
                producer.produce(topic, buf.getvalue(), headers=headers)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    left = producer.flush(60)
    elapsed = time.perf_counter() - started
    assert left == 0, f"{left} raw records undelivered"
    return len(records) / elapsed


async def client_loop(
    settings: Settings,
    topic: str,
    store: SchemaStore,
    records: list[dict[str, Any]],
    batch: int,
) -> float:
    async with TaskClient(settings, schemas={topic: SCHEMA}, store=store) as client:
        started = time.perf_counter()
        for i in range(0, len(records), batch):
            await client.submit_many(topic, records[i : i + batch])
        elapsed = time.perf_counter() - started
    return len(records) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap-servers", default=None)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=10_000, help="submit_many batch size")
    args = parser.parse_args()
    settings = Settings.load({"bootstrap_servers": args.bootstrap_servers})
    topic = f"bench.produce.{uuid.uuid4().hex[:8]}"
    admin = KafkaAdmin(settings)
    admin.ensure_topics([TopicSpec(topic, 6, 1)])
    store = SchemaStore.load(["schemas"])
    schema = store.get(SCHEMA)
    records = payloads(args.records)
    raw: list[float] = []
    client: list[float] = []
    try:
        for round_no in range(1, args.rounds + 1):
            raw.append(raw_loop(settings, topic, schema, records))
            client.append(asyncio.run(client_loop(settings, topic, store, records, args.batch)))
            print(f"round {round_no}: raw {raw[-1]:,.0f} rec/s, client {client[-1]:,.0f} rec/s")
    finally:
        admin.delete_topics([topic])
    best_raw, best_client = max(raw), max(client)
    print(f"raw confluent-kafka + fastavro: {best_raw:,.0f} records/s")
    print(f"TaskClient.submit_many:        {best_client:,.0f} records/s")
    print(f"ratio client/raw: {best_client / best_raw:.2f} (target >= 0.80)")


if __name__ == "__main__":
    main()
