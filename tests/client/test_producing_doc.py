"""The worked hex example in docs/producing.md is what the codecs produce."""

from __future__ import annotations

import re
from pathlib import Path

from framework.serde import SchemaStore

DOC = Path(__file__).resolve().parents[2] / "docs" / "producing.md"
RECORD = {"text": "hello world", "lowercase": True}


def _doc_hex() -> dict[str, bytes]:
    found = re.findall(r"^\s+wire ([a-z-]+):\s+([0-9A-F ]+)$", DOC.read_text(), re.M)
    return {wire: bytes.fromhex(hex_) for wire, hex_ in found}


def test_doc_hex_examples_match_the_codecs(store: SchemaStore) -> None:
    doc = _doc_hex()
    assert set(doc) == {"avro", "single-object", "confluent"}
    body = store.codec("ktf.examples.WordCountTask", "avro").encode(RECORD)
    assert doc["avro"] == body
    single = store.codec("ktf.examples.WordCountTask", "single-object")
    assert doc["single-object"] == single.encode(RECORD)
    assert single.decode(doc["single-object"]) == RECORD
    # Confluent framing with schema id 1 (the id depends on the registry).
    assert doc["confluent"] == b"\x00" + (1).to_bytes(4, "big") + body
