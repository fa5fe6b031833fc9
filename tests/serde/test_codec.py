"""Codec behaviour common to all wire formats, exercised on plain Avro."""

from __future__ import annotations

from io import BytesIO
from typing import Any

import pytest
from fastavro import schemaless_reader, schemaless_writer

from framework.errors import EncodeError
from framework.serde import RecordDecodeError, SchemaStore

ORDER = "ktf.test.Order"


def raw_encode(schema: Any, record: Any) -> bytes:
    out = BytesIO()
    schemaless_writer(out, schema, record)
    return out.getvalue()


def test_avro_roundtrip_matches_raw_fastavro(store: SchemaStore, order: dict[str, Any]) -> None:
    codec = store.codec(ORDER)
    data = codec.encode(order)
    assert data == raw_encode(store.get(ORDER), order)
    assert codec.decode(data) == order
    assert schemaless_reader(BytesIO(data), store.get(ORDER), None) == order
    assert (codec.schema_name, codec.wire) == (ORDER, "avro")
    assert codec.schema is store.get(ORDER)


def test_missing_fields_with_defaults_are_filled(store: SchemaStore) -> None:
    codec = store.codec(ORDER)
    minimal = {"id": "o", "total": {"amount": 1, "currency": "EUR"}, "status": "NEW"}
    assert codec.decode(codec.encode(minimal)) == {
        **minimal,
        "note": "",
        "priority": 0,
        "tags": [],
        "coupon": None,
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"id": 5}, "field 'id': expected string, got int 5"),
        ({"total": {"amount": "5", "currency": "EUR"}}, "field 'total.amount': expected long"),
        ({"total": {"amount": 5}}, "field 'total.currency': missing (expected string)"),
        ({"tags": ["a", 1]}, "field 'tags[1]': expected string, got int 1"),
        ({"coupon": {"code": 3}}, "field 'coupon.code': expected string, got int 3"),
        ({"status": "LOST"}, "field 'status': expected enum ktf.test.Status"),
        ({"priority": 2**40}, "field 'priority': expected int"),
        ({"stauts": "NEW"}, "field 'stauts': not in the schema"),
    ],
)
def test_invalid_record_names_the_field(
    store: SchemaStore, order: dict[str, Any], change: dict[str, Any], message: str
) -> None:
    codec = store.codec(ORDER)
    with pytest.raises(EncodeError, match=f"^{ORDER}: ") as info:
        codec.encode({**order, **change})
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    with pytest.raises(EncodeError):
        codec.validate({**order, **change})


def test_missing_required_field_is_named(store: SchemaStore) -> None:
    with pytest.raises(EncodeError, match="field 'id': missing"):
        store.codec(ORDER).validate({"total": {"amount": 1, "currency": "X"}, "status": "NEW"})


def test_validate_accepts_valid_record(store: SchemaStore, order: dict[str, Any]) -> None:
    assert store.codec(ORDER).validate(order) is None


def test_trailing_bytes_are_detected(store: SchemaStore, order: dict[str, Any]) -> None:
    codec = store.codec(ORDER)
    data = codec.encode(order) + b"\x00\x01"
    with pytest.raises(RecordDecodeError, match="2 trailing bytes") as info:
        codec.decode(data)
    assert info.value.reason == "trailing-bytes"
    assert ORDER in str(info.value) and "(avro)" in str(info.value)


def test_truncated_body_is_detected(store: SchemaStore, order: dict[str, Any]) -> None:
    data = store.codec(ORDER).encode(order)
    with pytest.raises(RecordDecodeError) as info:
        store.codec(ORDER).decode(data[:-3])
    assert info.value.reason == "truncated"
    assert not info.value.retriable


def test_bad_union_index_is_invalid_avro(store: SchemaStore) -> None:
    money = store.codec("ktf.test.Money")
    codec = store.codec(ORDER)
    # id "o", money, status 0, note "", priority 0, tags [], coupon union index 7.
    data = b"\x02o" + money.encode({"amount": 1, "currency": "E"}) + b"\x00\x00\x00\x00\x0e"
    with pytest.raises(RecordDecodeError) as info:
        codec.decode(data)
    assert info.value.reason == "invalid-avro"


def test_invalid_utf8_is_invalid_avro(store: SchemaStore) -> None:
    with pytest.raises(RecordDecodeError) as info:
        store.codec("ktf.test.Money").decode(b"\x02\x02\xff")
    assert info.value.reason == "invalid-avro"


def test_avro_codec_with_older_writer_resolves(store: SchemaStore) -> None:
    v2 = store.history(ORDER)[1]
    old = {
        "id": "o",
        "total": {"amount": 1, "currency": "E"},
        "status": "PAID",
        "note": "n",
        "tags": [],
    }
    codec = store.codec(ORDER, writer=v2.path)
    assert codec.decode(raw_encode(v2.parsed, old)) == {**old, "priority": 0, "coupon": None}


def test_unknown_wire_is_rejected(store: SchemaStore) -> None:
    from framework.errors import SchemaError

    with pytest.raises(SchemaError, match="unknown wire format 'json'"):
        store.codec(ORDER, wire="json")  # type: ignore[arg-type]
