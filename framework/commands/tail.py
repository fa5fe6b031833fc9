"""``ktf tail``: print a topic's records, decoded, with their headers.

No consumer group is joined and nothing is committed: every partition is assigned
directly (at its end, or its beginning with ``--from-beginning``), so tailing never
disturbs the workers' offsets.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import confluent_kafka
from confluent_kafka import KafkaException, TopicPartition

from framework import headers as h
from framework.client.topics import CodecCache, TopicSchema, topic_schemas
from framework.commands._common import add_connection_args, settings_from
from framework.commands.send import add_schema_args, quiet_logging, registry_of, to_json
from framework.config import Settings
from framework.errors import ConfigError, KafkaError
from framework.kafka.watermarks import watermarks
from framework.registry import HandlerRegistry, load_handlers
from framework.routing.control import CONTROL_PARSED
from framework.serde import AvroCodec, Codec, SchemaStore


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "tail",
        help="print a topic's records, decoded, with their headers",
        description=(
            "Print one JSON object per record: topic, partition, offset, timestamp, key, "
            "headers and the decoded value (or value_hex and decode_error). The schema "
            "comes from --schema or from the handlers: a handler's task topic, its "
            ".retry.* and .dlq topics use its task schema, <topic>.reply its result "
            "schema. Joins no consumer group and commits nothing."
        ),
    )
    p.add_argument("topic", metavar="TOPIC")
    p.add_argument("--from-beginning", action="store_true", help="start at the oldest record")
    p.add_argument("--count", type=int, metavar="N", help="exit after N records")
    p.add_argument(
        "--idle-timeout",
        type=float,
        metavar="S",
        help="exit after S seconds without a record (default: run until interrupted)",
    )
    add_schema_args(p)
    add_connection_args(p)
    p.set_defaults(func=run)


def value_codec(
    topic: str,
    schemas: dict[str, TopicSchema],
    store: SchemaStore,
    registry: Any = None,
) -> Codec | None:
    """The codec of ``topic``'s values, inferred from handler topics; None if unknown."""
    if topic == h.CONTROL_TOPIC and topic not in schemas:
        # The framework's own records: cancellations and other commands.
        return AvroCodec("ktf.framework.Control", CONTROL_PARSED)
    cache = CodecCache(store, schemas, registry=registry)
    if topic in schemas:
        return cache.get(topic).task
    for base, decl in schemas.items():
        if topic == h.dlq_topic(base) or topic.startswith(f"{base}.retry."):
            return cache.get(base).task
        if topic == h.reply_topic(base) and decl.result_schema is not None:
            return cache.get(base).result
    return None


def run(args: argparse.Namespace) -> int:
    quiet_logging()
    if args.count is not None and args.count <= 0:
        raise ConfigError(f"--count must be > 0, got {args.count}")
    settings = settings_from(args)
    store = SchemaStore.load([settings.schemas_dir])
    if args.schema:
        schemas = {args.topic: TopicSchema(args.schema, None, args.wire)}
    else:
        registry: HandlerRegistry = load_handlers(settings.handlers)
        schemas = topic_schemas(None, registry)
    codec = value_codec(args.topic, schemas, store, registry_of(args))
    if codec is None:
        print(
            f"ktf tail: no schema known for {args.topic!r}: values are printed as hex "
            "(pass --schema NAME)",
            file=sys.stderr,
        )
    return tail(settings, args.topic, codec, args.from_beginning, args.count, args.idle_timeout)


def _consumer(settings: Settings, topic: str, from_beginning: bool) -> confluent_kafka.Consumer:
    conf = settings.librdkafka("consumer")
    # Never joined (assign, not subscribe) and never committed.
    conf.update({"group.id": f"{settings.client_id}-tail", "enable.auto.commit": False})
    consumer = confluent_kafka.Consumer(conf)
    try:
        md = consumer.list_topics(topic, timeout=10.0)
        meta = md.topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            detail = meta.error if meta is not None else "not in metadata"
            raise KafkaError(f"topic {topic!r} is not available: {detail}")
        tps = []
        for partition in sorted(meta.partitions):
            low, high = watermarks(consumer, TopicPartition(topic, partition), 10.0)
            tps.append(TopicPartition(topic, partition, low if from_beginning else high))
        consumer.assign(tps)
    except KafkaException as exc:
        consumer.close()
        raise KafkaError(f"cannot assign {topic!r}: {exc}") from exc
    except BaseException:
        consumer.close()
        raise
    return consumer


def record_json(msg: Any, codec: Codec | None) -> dict[str, Any]:
    key = msg.key()
    out: dict[str, Any] = {
        "topic": msg.topic(),
        "partition": msg.partition(),
        "offset": msg.offset(),
        "timestamp": msg.timestamp()[1],
        "key": key.decode("utf-8", "replace") if key is not None else None,
        "headers": h.to_dict(msg.headers()),
    }
    value = msg.value()
    if value is None:
        out["value"] = None
    elif codec is None:
        out["value_hex"] = value.hex()
    else:
        try:
            out["value"] = codec.decode(value)
        except Exception as exc:
            out["value_hex"] = value.hex()
            out["decode_error"] = str(exc)
    return out


def tail(
    settings: Settings,
    topic: str,
    codec: Codec | None,
    from_beginning: bool,
    count: int | None,
    idle_timeout: float | None,
) -> int:
    """Print records until ``count`` were printed, ``idle_timeout`` passed, or Ctrl-C."""
    consumer = _consumer(settings, topic, from_beginning)
    printed = 0
    last = time.monotonic()
    try:
        while count is None or printed < count:
            want = 500 if count is None else min(500, count - printed)
            messages = consumer.consume(want, 0.2)
            for msg in messages:
                if msg.error() is not None:
                    print(f"ktf tail: {msg.error()}", file=sys.stderr)
                    continue
                print(to_json(record_json(msg, codec)), flush=True)
                printed += 1
            if messages:
                last = time.monotonic()
            elif idle_timeout is not None and time.monotonic() - last >= idle_timeout:
                break
    except KafkaException as exc:
        raise KafkaError(f"tailing {topic!r} failed: {exc}") from exc
    finally:
        consumer.close()
    return 0
