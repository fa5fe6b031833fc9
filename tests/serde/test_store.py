"""SchemaStore: loading, cross-file references, history, name resolution."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from framework.errors import SchemaError
from framework.serde import SchemaStore

SCHEMAS = Path(__file__).parent / "schemas"
ORDER = "ktf.test.Order"


def write(root: Path, rel: str, schema: object) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(schema) if not isinstance(schema, str) else schema)
    return path


def record(name: str, *fields: tuple[str, object]) -> dict[str, object]:
    return {"type": "record", "name": name, "fields": [{"name": n, "type": t} for n, t in fields]}


def test_names_lists_current_records_only(store: SchemaStore) -> None:
    assert store.names() == ["ktf.test.Money", ORDER]


def test_history_versions_are_loaded_oldest_first_but_not_current(store: SchemaStore) -> None:
    versions = store.history(ORDER)
    assert [v.version for v in versions] == [1, 2]
    assert all("history" in v.path.parts for v in versions)
    current_fields = [f["name"] for f in store.get(ORDER)["fields"]]
    assert "priority" in current_fields and "legacy" not in current_fields


def test_type_defined_in_another_file_is_resolved(tmp_path: Path) -> None:
    # "z" sorts after "a": the referencing file is parsed before its dependency.
    write(tmp_path, "a/Uses.avsc", record("n.Uses", ("m", "n.Zed")))
    write(tmp_path, "z/Zed.avsc", record("n.Zed", ("x", "int")))
    store = SchemaStore.load([tmp_path])
    assert store.names() == ["n.Uses", "n.Zed"]
    assert store.get("n.Uses")["fields"][0]["type"] == "n.Zed"


def test_unknown_type_names_file_and_type(tmp_path: Path) -> None:
    path = write(tmp_path, "Uses.avsc", record("n.Uses", ("m", "n.Missing")))
    with pytest.raises(SchemaError, match=rf"{path}: unknown type 'n.Missing'"):
        SchemaStore.load([tmp_path])


def test_invalid_json_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "Bad.avsc", '{"type": "record",\n "name": }')
    with pytest.raises(SchemaError, match=rf"{path}: invalid JSON at line 2"):
        SchemaStore.load([tmp_path])


def test_invalid_avro_names_file(tmp_path: Path) -> None:
    path = write(
        tmp_path, "Bad.avsc", {"type": "record", "name": "n.Bad", "fields": [{"name": "x"}]}
    )
    with pytest.raises(SchemaError, match=rf"{path}: invalid Avro schema"):
        SchemaStore.load([tmp_path])


def test_conflicting_definitions_across_files_are_rejected(tmp_path: Path) -> None:
    write(
        tmp_path, "A.avsc", record("n.A", ("e", {"type": "enum", "name": "n.E", "symbols": ["X"]}))
    )
    path = write(
        tmp_path, "B.avsc", record("n.B", ("e", {"type": "enum", "name": "n.E", "symbols": ["Y"]}))
    )
    with pytest.raises(SchemaError, match=rf"{path}: defines n.E differently from .*A.avsc"):
        SchemaStore.load([tmp_path])


def test_identical_definitions_across_files_are_accepted(tmp_path: Path) -> None:
    enum = {"type": "enum", "name": "n.E", "symbols": ["X"]}
    write(tmp_path, "A.avsc", record("n.A", ("e", enum)))
    write(tmp_path, "B.avsc", record("n.B", ("e", {**enum, "doc": "same, documented"})))
    assert SchemaStore.load([tmp_path]).names() == ["n.A", "n.B"]


def test_history_file_must_follow_naming_convention(tmp_path: Path) -> None:
    write(tmp_path, "A.avsc", record("n.A", ("x", "int")))
    path = write(tmp_path, "history/A-old.avsc", record("n.A", ("x", "int")))
    with pytest.raises(SchemaError, match=rf"{path}: history files must be named"):
        SchemaStore.load([tmp_path])


def test_history_without_current_schema_is_rejected(tmp_path: Path) -> None:
    write(tmp_path, "A.avsc", record("n.A", ("x", "int")))
    path = write(tmp_path, "history/B.v1.avsc", record("n.B", ("x", "int")))
    with pytest.raises(SchemaError, match=rf"{path}: history version of n.B, but no current"):
        SchemaStore.load([tmp_path])


def test_missing_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="nope: schema directory does not exist"):
        SchemaStore.load([tmp_path / "nope"])


def test_get_unknown_name_suggests_close_names(store: SchemaStore) -> None:
    with pytest.raises(SchemaError, match=r"unknown schema 'Order'; did you mean ktf.test.Order"):
        store.get("Order")
    with pytest.raises(SchemaError, match=r"did you mean ktf.test.Order"):
        store.get("ktf.test.Ordr")


def test_resolve_accepts_name_path_and_dict(store: SchemaStore) -> None:
    by_name = store.resolve(ORDER)
    by_path = store.resolve(SCHEMAS / "orders" / "Order.avsc")
    by_path_str = store.resolve(str(SCHEMAS / "orders" / "Order.avsc"))
    assert by_name[0] == by_path[0] == by_path_str[0] == ORDER
    # Equal to the current schema: the store's own parsed object is shared.
    assert by_path[1] is by_name[1]
    name, parsed = store.resolve(record("n.Inline", ("m", "ktf.test.Money")))
    assert name == "n.Inline"
    assert parsed["fields"][0]["type"] == "ktf.test.Money"


def test_resolve_missing_file_is_named(store: SchemaStore, tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match=r"Nope\.avsc: schema file does not exist"):
        store.resolve(tmp_path / "Nope.avsc")


def test_project_schemas_load() -> None:
    project = Path(__file__).resolve().parents[2] / "schemas"
    if not any(project.rglob("*.avsc")):
        pytest.skip("no project schemas yet")
    assert SchemaStore.load([project]).names()
