"""Avro serialisation: schemas parsed once, codecs per wire format, schema evolution.

store = SchemaStore.load(["schemas"])
codec = store.codec("ktf.examples.WordCountTask", wire="single-object")
data = codec.encode({"text": "hello"})
task = codec.decode(data)
"""

from framework.serde.codec import (
    DECODE_REASONS,
    WIRE_FORMATS,
    AvroCodec,
    Codec,
    RecordDecodeError,
    TopicCodecs,
    WireFormat,
)
from framework.serde.store import SchemaStore, SchemaVersion

__all__ = [
    "DECODE_REASONS",
    "WIRE_FORMATS",
    "AvroCodec",
    "Codec",
    "RecordDecodeError",
    "SchemaStore",
    "SchemaVersion",
    "TopicCodecs",
    "WireFormat",
]
