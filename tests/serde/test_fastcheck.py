"""The compiled fast check never accepts a record fastavro's validator rejects."""

from __future__ import annotations

import itertools
from typing import Any

import fastavro
import pytest
from fastavro.validation import validate

from framework.serde.fastcheck import compile_check

SCHEMA = fastavro.parse_schema(
    {
        "type": "record",
        "name": "t.Everything",
        "fields": [
            {"name": "i", "type": "int"},
            {"name": "l", "type": "long"},
            {"name": "d", "type": "double"},
            {"name": "s", "type": "string"},
            {"name": "b", "type": "bytes"},
            {"name": "flag", "type": "boolean", "default": False},
            {"name": "opt", "type": ["null", "string"], "default": None},
            {"name": "tags", "type": {"type": "array", "items": "string"}, "default": []},
            {"name": "attrs", "type": {"type": "map", "values": "long"}, "default": {}},
            {
                "name": "color",
                "type": {"type": "enum", "name": "t.Color", "symbols": ["RED", "GREEN"]},
                "default": "RED",
            },
            {
                "name": "fx",
                "type": {"type": "fixed", "name": "t.Four", "size": 4},
                "default": "abcd",
            },
            {
                "name": "child",
                "type": [
                    "null",
                    {
                        "type": "record",
                        "name": "t.Node",
                        "fields": [
                            {"name": "v", "type": "int"},
                            {"name": "next", "type": ["null", "t.Node"], "default": None},
                        ],
                    },
                ],
                "default": None,
            },
        ],
    }
)

GOOD: dict[str, Any] = {
    "i": 1,
    "l": 2**40,
    "d": 1.5,
    "s": "x",
    "b": b"y",
    "opt": "z",
    "tags": ["a"],
    "attrs": {"k": 3},
    "color": "GREEN",
    "fx": b"1234",
    "child": {"v": 1, "next": {"v": 2, "next": None}},
}

MUTATIONS: dict[str, list[Any]] = {
    "i": [2**31, -(2**31) - 1, "1", 1.0, True, None],
    "l": [2**63, "1", 1.5, None],
    "d": ["1.0", None, b"1"],
    "s": [1, b"x", None],
    "b": ["x", 1, None],
    "opt": [1, b"x"],
    "tags": [["a", 1], "a", None, ("a",)],
    "attrs": [{"k": "v"}, {1: 2}, None],
    "color": ["BLUE", 1, None],
    "fx": [b"123", "1234", None],
    "child": [{"v": "1"}, {"v": 1, "next": {"v": "x"}}, 5],
}


def test_valid_record_takes_the_fast_path() -> None:
    check = compile_check(SCHEMA, SCHEMA["__named_schemas"])
    assert check is not None
    assert check(GOOD)
    assert validate(GOOD, SCHEMA)


@pytest.mark.parametrize(
    ("field", "value"),
    [(f, v) for f, values in MUTATIONS.items() for v in values],
)
def test_fast_check_never_accepts_what_fastavro_rejects(field: str, value: Any) -> None:
    check = compile_check(SCHEMA, SCHEMA["__named_schemas"])
    assert check is not None
    record = dict(GOOD, **{field: value})
    if check(record):
        assert validate(record, SCHEMA, raise_errors=False), (field, value)
    # Every one of these mutations is invalid to the fast check.
    assert not check(record), (field, value)


def test_missing_field_without_default_and_unknown_fields_are_rejected() -> None:
    check = compile_check(SCHEMA, SCHEMA["__named_schemas"])
    assert check is not None
    missing = {k: v for k, v in GOOD.items() if k != "i"}
    assert not check(missing)
    assert not check(dict(GOOD, extra=1))
    optional_dropped = {k: v for k, v in GOOD.items() if k not in ("opt", "tags", "color")}
    assert check(optional_dropped)
    assert validate(optional_dropped, SCHEMA)


def test_pairs_of_mutations_stay_conservative() -> None:
    check = compile_check(SCHEMA, SCHEMA["__named_schemas"])
    assert check is not None
    fields = list(MUTATIONS)
    for a, b in itertools.combinations(fields, 2):
        record = dict(GOOD, **{a: MUTATIONS[a][0], b: MUTATIONS[b][-1]})
        if check(record):
            assert validate(record, SCHEMA, raise_errors=False)


def test_logical_types_are_left_to_the_full_validator() -> None:
    schema = fastavro.parse_schema(
        {
            "type": "record",
            "name": "t.When",
            "fields": [{"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}}],
        }
    )
    assert compile_check(schema, schema["__named_schemas"]) is None
