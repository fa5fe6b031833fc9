"""Compatibility rules, cross-checked by decoding old-writer data with fastavro."""

from __future__ import annotations

import json
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer

from framework.cli import main
from framework.serde.compat import problems

SCHEMAS = Path(__file__).parent / "schemas"


def rec(*fields: dict[str, Any], name: str = "t.R") -> dict[str, Any]:
    return {"type": "record", "name": name, "fields": list(fields)}


def f(name: str, type_: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **extra}


def enum(*symbols: str, **extra: Any) -> dict[str, Any]:
    return {"type": "enum", "name": "t.E", "symbols": list(symbols), **extra}


def fastavro_reads(reader: Any, writer: Any, datum: Any) -> bool:
    """Ground truth: does fastavro resolve ``datum`` written with writer to reader?"""
    out = BytesIO()
    w = parse_schema(writer)
    schemaless_writer(out, w, datum)
    try:
        schemaless_reader(BytesIO(out.getvalue()), w, parse_schema(reader))
    except Exception:
        return False
    return True


# (old writer schema, new reader schema, a datum of the old schema, compatible?)
CASES = {
    "field added with default": (
        rec(f("a", "int")),
        rec(f("a", "int"), f("b", "string", default="x")),
        {"a": 1},
        True,
    ),
    "field added without default": (
        rec(f("a", "int")),
        rec(f("a", "int"), f("b", "string")),
        {"a": 1},
        False,
    ),
    "field removed": (
        rec(f("a", "int"), f("b", "string")),
        rec(f("a", "int")),
        {"a": 1, "b": "x"},
        True,
    ),
    "int to long": (rec(f("a", "int")), rec(f("a", "long")), {"a": 1}, True),
    "int to double": (rec(f("a", "int")), rec(f("a", "double")), {"a": 1}, True),
    "long to int": (rec(f("a", "long")), rec(f("a", "int")), {"a": 1}, False),
    "float to double": (rec(f("a", "float")), rec(f("a", "double")), {"a": 1.5}, True),
    "double to float": (rec(f("a", "double")), rec(f("a", "float")), {"a": 1.5}, False),
    "string to bytes": (rec(f("a", "string")), rec(f("a", "bytes")), {"a": "x"}, True),
    "string to int": (rec(f("a", "string")), rec(f("a", "int")), {"a": "x"}, False),
    "enum symbol added": (rec(f("e", enum("A"))), rec(f("e", enum("A", "B"))), {"e": "A"}, True),
    "enum symbol removed": (rec(f("e", enum("A", "B"))), rec(f("e", enum("A"))), {"e": "B"}, False),
    "enum symbol removed with default": (
        rec(f("e", enum("A", "B"))),
        rec(f("e", enum("A", default="A"))),
        {"e": "B"},
        True,
    ),
    "made optional": (rec(f("a", "int")), rec(f("a", ["null", "int"])), {"a": 1}, True),
    "optional made required": (
        rec(f("a", ["null", "int"])),
        rec(f("a", "int")),
        {"a": None},
        False,
    ),
    "array items promoted": (
        rec(f("a", {"type": "array", "items": "int"})),
        rec(f("a", {"type": "array", "items": "long"})),
        {"a": [1]},
        True,
    ),
    "map values changed": (
        rec(f("a", {"type": "map", "values": "int"})),
        rec(f("a", {"type": "map", "values": "string"})),
        {"a": {"k": 1}},
        False,
    ),
    "record renamed": (rec(f("a", "int")), rec(f("a", "int"), name="t.Other"), {"a": 1}, False),
    "nested field added without default": (
        rec(f("n", rec(f("x", "int"), name="t.N"))),
        rec(f("n", rec(f("x", "int"), f("y", "int"), name="t.N"))),
        {"n": {"x": 1}},
        False,
    ),
    "fixed size changed": (
        rec(f("h", {"type": "fixed", "name": "t.H", "size": 2})),
        rec(f("h", {"type": "fixed", "name": "t.H", "size": 4})),
        {"h": b"ab"},
        False,
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_rule_agrees_with_fastavro_resolution(case: str) -> None:
    writer, reader, datum, compatible = CASES[case]
    found = problems(parse_schema(reader), parse_schema(writer))
    assert (not found) is compatible, found
    assert fastavro_reads(reader, writer, datum) is compatible


def test_problem_names_the_nested_field() -> None:
    writer, reader, _, _ = CASES["nested field added without default"]
    assert problems(parse_schema(reader), parse_schema(writer)) == [
        "field 'n.y': reader field has no default and the writer has no such field"
    ]


def test_recursive_schema_terminates() -> None:
    node = rec(f("v", "int"), f("next", ["null", "t.R"], default=None))
    assert problems(parse_schema(node), parse_schema(node)) == []


def write_tree(root: Path, current: dict[str, Any], *history: dict[str, Any]) -> None:
    (root / "history").mkdir(parents=True)
    (root / "R.avsc").write_text(json.dumps(current))
    for n, old in enumerate(history, start=1):
        (root / "history" / f"R.v{n}.avsc").write_text(json.dumps(old))


def test_check_command_passes_on_compatible_history(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schemas", "check", "--dir", str(SCHEMAS)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok: 2 schemas, 2 history version(s) compatible (backward)")


def test_check_command_fails_on_breaking_change(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_tree(tmp_path, rec(f("a", "int"), f("b", "string")), rec(f("a", "int")))
    assert main(["schemas", "check", "--dir", str(tmp_path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        "t.R: BACKWARD: current cannot read v1 data: field 'b': reader field has no default "
        "and the writer has no such field"
    )
    assert lines[-1].startswith("FAILED: 1 incompatible change(s) (backward)")


def test_check_command_forward_mode_flags_added_enum_symbol(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["schemas", "check", "--dir", str(SCHEMAS), "--compat", "forward"]) == 1
    out = capsys.readouterr().out
    assert "ktf.test.Order: FORWARD: v2 cannot read current data: field 'status'" in out
    assert "lacks writer symbol(s) SHIPPED" in out


def test_check_command_reports_unparsable_schema_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "Bad.avsc").write_text("{")
    assert main(["schemas", "check", "--dir", str(tmp_path)]) == 2
    assert "Bad.avsc: invalid JSON" in capsys.readouterr().err
