"""Wire formats: exact bytes (the docs' hex examples), header errors, and evolution:
a task written with an older writer schema is read with the current reader schema."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from fastavro import schemaless_writer

from framework.errors import EncodeError, SchemaError
from framework.serde import RecordDecodeError, SchemaStore
from framework.serde.confluent import schema_json
from framework.serde.names import rabin_fingerprint

ORDER = "ktf.test.Order"
MONEY = "ktf.test.Money"
EXAMPLE = {"amount": 1250, "currency": "EUR"}

# The worked examples of docs/wire-formats.md, byte for byte.
DOC_AVRO = "C4 13 06 45 55 52"
DOC_SINGLE_OBJECT = "C3 01 18 87 D8 CC 09 12 12 EA C4 13 06 45 55 52"
DOC_CONFLUENT = "00 00 00 00 01 C4 13 06 45 55 52"

V1_TASK = {
    "id": "o-0",
    "total": {"amount": 99, "currency": "USD"},
    "status": "PAID",
    "legacy": "dropped in v2",
}
# What the current reader makes of V1_TASK: removed field gone, added ones defaulted.
V1_AS_CURRENT = {
    "id": "o-0",
    "total": {"amount": 99, "currency": "USD"},
    "status": "PAID",
    "note": "",
    "priority": 0,
    "tags": [],
    "coupon": None,
}


def hexs(data: bytes) -> str:
    return data.hex(" ").upper()


def avro_body(schema: Any, record: Any) -> bytes:
    out = BytesIO()
    schemaless_writer(out, schema, record)
    return out.getvalue()


def spec_rabin(text: str) -> int:
    """CRC-64-AVRO as printed in the Avro specification (independent of fastavro)."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for byte in text.encode():
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


def registry() -> Any:
    return SchemaRegistryClient.new_client({"url": "mock://serde-tests"})


# -- exact bytes ------------------------------------------------------------------


def test_avro_bytes_match_the_documented_example(store: SchemaStore) -> None:
    assert hexs(store.codec(MONEY).encode(EXAMPLE)) == DOC_AVRO


def test_single_object_bytes_match_the_documented_example(store: SchemaStore) -> None:
    codec = store.codec(MONEY, wire="single-object")
    assert hexs(codec.encode(EXAMPLE)) == DOC_SINGLE_OBJECT
    assert codec.decode(bytes.fromhex(DOC_SINGLE_OBJECT)) == EXAMPLE


def test_confluent_bytes_match_the_documented_example(store: SchemaStore) -> None:
    codec = store.codec(MONEY, wire="confluent", registry=registry())
    assert hexs(codec.encode(EXAMPLE)) == DOC_CONFLUENT  # first id of a fresh registry is 1
    assert codec.decode(bytes.fromhex(DOC_CONFLUENT)) == EXAMPLE


def test_fingerprint_matches_avro_spec_vectors_and_reference_algorithm(store: SchemaStore) -> None:
    from fastavro import parse_schema

    # Vectors from Avro's share/test/data/schema-tests.txt.
    assert int.from_bytes(rabin_fingerprint(parse_schema("null")), "little", signed=True) == (
        7195948357588979594
    )
    assert int.from_bytes(rabin_fingerprint(parse_schema("int")), "little", signed=True) == (
        8247732601305521295
    )
    canonical = (
        '{"name":"ktf.test.Money","type":"record","fields":[{"name":"amount","type":"long"},'
        '{"name":"currency","type":"string"}]}'
    )
    assert rabin_fingerprint(store.get(MONEY)) == spec_rabin(canonical).to_bytes(8, "little")


def test_fingerprint_inlines_types_defined_in_other_files(store: SchemaStore) -> None:
    from framework.serde.names import canonical_form

    form = canonical_form(store.get(ORDER))
    assert '"type":{"name":"ktf.test.Money","type":"record"' in form
    assert form.count('"name":"ktf.test.Money"') == 1


# -- evolution --------------------------------------------------------------------


def test_single_object_reads_every_history_version_with_current_reader(
    store: SchemaStore,
) -> None:
    codec = store.codec(ORDER, wire="single-object")
    v1, v2 = store.history(ORDER)
    old = b"\xc3\x01" + v1.fingerprint + avro_body(v1.parsed, V1_TASK)
    assert codec.decode(old) == V1_AS_CURRENT
    v2_task = {
        "id": "o-2",
        "total": {"amount": 1, "currency": "EUR"},
        "status": "NEW",
        "note": "hi",
        "tags": ["x"],
    }
    data = b"\xc3\x01" + v2.fingerprint + avro_body(v2.parsed, v2_task)
    assert codec.decode(data) == {**v2_task, "priority": 0, "coupon": None}


def test_single_object_old_reader_reads_added_enum_symbol_only_with_default(
    store: SchemaStore, order: dict[str, Any]
) -> None:
    # The current writer added SHIPPED; a current-version record with status NEW is
    # still readable by the v2 reader (the symbol is resolved by name).
    new = store.codec(ORDER, wire="single-object").encode({**order, "status": "NEW"})
    old_reader = store.codec(store.history(ORDER)[1].path, wire="single-object")
    decoded = old_reader.decode(new)
    assert decoded["status"] == "NEW" and "priority" not in decoded


def test_confluent_reads_older_writer_registered_in_registry(store: SchemaStore) -> None:
    client = registry()
    v1 = store.history(ORDER)[0]
    old_id = client.register_schema("orders-value", Schema(schema_json(v1.parsed), "AVRO"))
    codec = store.codec(ORDER, wire="confluent", registry=client, subject="orders-value")
    data = b"\x00" + old_id.to_bytes(4, "big") + avro_body(v1.parsed, V1_TASK)
    assert codec.decode(data) == V1_AS_CURRENT
    # The current schema gets its own id; both kinds of records decode side by side.
    current = codec.encode({**V1_AS_CURRENT, "status": "SHIPPED"})
    assert int.from_bytes(current[1:5], "big") != old_id
    assert codec.decode(current)["status"] == "SHIPPED"
    assert codec.decode(data) == V1_AS_CURRENT


def test_confluent_registry_config_dict_builds_client_lazily(store: SchemaStore) -> None:
    codec = store.codec(MONEY, wire="confluent", registry={"url": "mock://lazy"})
    assert codec.decode(codec.encode(EXAMPLE)) == EXAMPLE


def test_confluent_without_auto_register_names_the_subject(store: SchemaStore) -> None:
    codec = store.codec(
        MONEY, wire="confluent", registry=registry(), auto_register=False, subject="money-value"
    )
    with pytest.raises(EncodeError, match="cannot find the schema under subject 'money-value'"):
        codec.encode(EXAMPLE)


def test_confluent_unreachable_registry_is_retriable(store: SchemaStore) -> None:
    codec = store.codec(
        MONEY,
        wire="confluent",
        registry={"url": "http://127.0.0.1:9", "timeout": 1, "max.retries": 0},
    )
    with pytest.raises(RecordDecodeError) as info:
        codec.decode(bytes.fromhex(DOC_CONFLUENT))
    assert info.value.reason == "registry-unavailable"
    assert info.value.retriable


# -- header errors ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "data", "reason", "text"),
    [
        ("single-object", bytes.fromhex(DOC_AVRO), "bad-magic", "expected single-object marker"),
        ("single-object", b"", "bad-magic", "got nothing"),
        ("single-object", b"\xc3\x01\x18\x87", "truncated", "header needs 10 bytes, got 4"),
        (
            "single-object",
            b"\xc3\x01" + bytes(8) + b"\x00",
            "unknown-fingerprint",
            "unknown writer schema fingerprint 0000000000000000",
        ),
        (
            "single-object",
            bytes.fromhex(DOC_SINGLE_OBJECT) + b"\x00",
            "trailing-bytes",
            "1 trailing bytes",
        ),
        ("single-object", bytes.fromhex(DOC_SINGLE_OBJECT)[:-2], "truncated", "truncated"),
        (
            "confluent",
            bytes.fromhex(DOC_SINGLE_OBJECT),
            "bad-magic",
            "expected magic byte 00, got C3",
        ),
        ("confluent", b"\x00\x00", "truncated", "header needs 5 bytes, got 2"),
        ("confluent", b"\x00\x00\x00\x00\x63\x00", "unknown-schema-id", "schema id 99"),
    ],
)
def test_header_mismatch_is_poison_with_precise_reason(
    store: SchemaStore, wire: Any, data: bytes, reason: str, text: str
) -> None:
    codec = store.codec(MONEY, wire=wire, registry=registry())
    with pytest.raises(RecordDecodeError) as info:
        codec.decode(data)
    assert info.value.reason == reason
    assert text in str(info.value)
    assert f"cannot decode {MONEY} ({wire})" in str(info.value)
    assert not info.value.retriable


def test_single_object_writer_of_another_record_is_schema_mismatch(store: SchemaStore) -> None:
    money = store.codec(MONEY, wire="single-object").encode(EXAMPLE)
    with pytest.raises(RecordDecodeError) as info:
        store.codec(ORDER, wire="single-object").decode(money)
    assert info.value.reason == "schema-mismatch"
    assert "writer ktf.test.Money" in str(info.value)


def test_confluent_needs_a_registry(store: SchemaStore) -> None:
    with pytest.raises(SchemaError, match="needs a schema registry"):
        store.codec(MONEY, wire="confluent")


def test_writer_override_is_only_for_plain_avro(store: SchemaStore, tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="only configurable for wire 'avro'"):
        store.codec(ORDER, wire="single-object", writer=store.history(ORDER)[0].path)
