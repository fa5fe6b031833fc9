"""Micro-benchmark: Codec encode/decode against raw fastavro on a small record.

    .venv/bin/python bench/serde.py [--n 200000]

Prints records/s for raw fastavro and for the Codec of each wire format, and the
ratio codec/raw. Encode through the Codec includes validation (the SDK's contract:
the offending field is named before anything is sent).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer

from framework.serde import SchemaStore

SCHEMA = {
    "type": "record",
    "name": "bench.Task",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "text", "type": "string"},
        {"name": "count", "type": "int"},
        {"name": "lowercase", "type": "boolean", "default": True},
    ],
}
RECORD = {"id": "task-000123", "text": "the quick brown fox jumps", "count": 42, "lowercase": True}


def rate(fn: Callable[[], Any], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200_000)
    n = parser.parse_args().n
    parsed = parse_schema(SCHEMA)

    def raw_encode() -> bytes:
        out = BytesIO()
        schemaless_writer(out, parsed, RECORD)
        return out.getvalue()

    body = raw_encode()
    raw_enc = rate(raw_encode, n)
    raw_dec = rate(lambda: schemaless_reader(BytesIO(body), parsed, None), n)
    print(f"raw fastavro           encode {raw_enc:>10,.0f}/s  decode {raw_dec:>10,.0f}/s")

    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "Task.avsc").write_text(__import__("json").dumps(SCHEMA))
        store = SchemaStore.load([tmp])
    for wire in ("avro", "single-object", "confluent"):
        extra = {"registry": {"url": "mock://bench"}} if wire == "confluent" else {}
        codec = store.codec("bench.Task", wire=wire, **extra)  # type: ignore[arg-type]
        data = codec.encode(RECORD)
        enc = rate(lambda c=codec: c.encode(RECORD), n)
        fast = rate(lambda c=codec: c.encode(RECORD, validate=False), n)
        dec = rate(lambda c=codec, d=data: c.decode(d), n)
        print(
            f"Codec {wire:<16} encode {enc:>10,.0f}/s ({enc / raw_enc:.2f}x)"
            f"  unvalidated {fast:>10,.0f}/s ({fast / raw_enc:.2f}x)"
            f"  decode {dec:>10,.0f}/s ({dec / raw_dec:.2f}x)"
        )


if __name__ == "__main__":
    main()
