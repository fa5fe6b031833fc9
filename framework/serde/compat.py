"""Schema compatibility by the Avro specification's schema resolution rules.

``problems(reader, writer)`` lists why data written with ``writer`` cannot be read
with ``reader``. The directions used by ``ktf schemas check``:

- BACKWARD (default): the new schema reads data written with each older version.
- FORWARD: each older version reads data written with the new schema.
- FULL: both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from framework.serde.names import NAMED_TYPES, PRIMITIVES
from framework.serde.store import SchemaStore, SchemaVersion

Compat = Literal["backward", "forward", "full"]
COMPAT_MODES: tuple[Compat, ...] = ("backward", "forward", "full")

# writer type -> reader types it may be promoted to (Avro spec, "Schema Resolution").
_PROMOTIONS: dict[str, frozenset[str]] = {
    "int": frozenset({"long", "float", "double"}),
    "long": frozenset({"float", "double"}),
    "float": frozenset({"double"}),
    "string": frozenset({"bytes"}),
    "bytes": frozenset({"string"}),
}


def _deref(schema: Any, named: Mapping[str, Any]) -> Any:
    while isinstance(schema, str) and schema not in PRIMITIVES and schema in named:
        schema = named[schema]
    if isinstance(schema, Mapping):
        kind = schema.get("type")
        if isinstance(kind, (Mapping, list)) or (
            isinstance(kind, str) and kind not in NAMED_TYPES and kind not in ("array", "map")
        ):
            # {"type": "long", "logicalType": ...} resolves as its underlying type.
            return _deref(kind, named)
    return schema


def _kind(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, Mapping):
        return str(schema.get("type"))
    return str(schema)


def _label(schema: Any) -> str:
    kind = _kind(schema)
    if kind in NAMED_TYPES and isinstance(schema, Mapping):
        return f"{kind} {schema.get('name')}"
    return kind


def _short(name: Any) -> str:
    return str(name).rpartition(".")[2]


def _names_match(reader: Mapping[str, Any], writer: Mapping[str, Any]) -> bool:
    # The spec compares unqualified names; aliases on the reader also match.
    aliases = {_short(a) for a in reader.get("aliases", ())}
    return _short(reader.get("name")) in {_short(writer.get("name"))} | aliases


class _Checker:
    def __init__(self, reader_named: Mapping[str, Any], writer_named: Mapping[str, Any]) -> None:
        self.rn = reader_named
        self.wn = writer_named
        self.out: list[str] = []
        self._seen: set[tuple[int, int]] = set()

    def problem(self, path: str, text: str) -> None:
        self.out.append(f"field {path!r}: {text}" if path else text)

    def readable(self, reader: Any, writer: Any) -> bool:
        """Whether ``writer`` data resolves to ``reader`` (no problems recorded)."""
        probe = _Checker(self.rn, self.wn)
        probe._seen = set(self._seen)
        probe.check(reader, writer, "")
        return not probe.out

    def check(self, reader: Any, writer: Any, path: str) -> None:
        r = _deref(reader, self.rn)
        w = _deref(writer, self.wn)
        key = (id(r), id(w))
        if key in self._seen:  # recursive types: already being checked
            return
        if isinstance(r, Mapping) and isinstance(w, Mapping):
            self._seen.add(key)
        rk, wk = _kind(r), _kind(w)
        if wk == "union":
            for branch in w:
                self.check(r, branch, path)
            return
        if rk == "union":
            if not any(self.readable(branch, w) for branch in r):
                self.problem(path, f"writer type {_label(w)} matches no branch of the reader union")
            return
        if rk != wk:
            if rk in _PROMOTIONS.get(wk, ()):
                return
            self.problem(path, f"type changed from {_label(w)} to {_label(r)}")
            return
        if rk in ("record", "error"):
            self._record(r, w, path)
        elif rk == "enum":
            self._enum(r, w, path)
        elif rk == "fixed":
            if not _names_match(r, w):
                self.problem(path, f"fixed renamed from {w.get('name')} to {r.get('name')}")
            elif r.get("size") != w.get("size"):
                self.problem(path, f"fixed size changed from {w.get('size')} to {r.get('size')}")
        elif rk == "array":
            self.check(r["items"], w["items"], f"{path}[]")
        elif rk == "map":
            self.check(r["values"], w["values"], f"{path}{{}}")

    def _record(self, r: Mapping[str, Any], w: Mapping[str, Any], path: str) -> None:
        if not _names_match(r, w):
            self.problem(path, f"record renamed from {w.get('name')} to {r.get('name')}")
            return
        written = {f["name"]: f for f in w["fields"]}
        for field in r["fields"]:
            sub = f"{path}.{field['name']}" if path else field["name"]
            names = [field["name"], *field.get("aliases", ())]
            source = next((written[n] for n in names if n in written), None)
            if source is not None:
                self.check(field["type"], source["type"], sub)
            elif "default" not in field:
                self.problem(sub, "reader field has no default and the writer has no such field")

    def _enum(self, r: Mapping[str, Any], w: Mapping[str, Any], path: str) -> None:
        if not _names_match(r, w):
            self.problem(path, f"enum renamed from {w.get('name')} to {r.get('name')}")
            return
        missing = [s for s in w.get("symbols", ()) if s not in r.get("symbols", ())]
        if missing and "default" not in r:
            self.problem(
                path,
                f"enum {r.get('name')} lacks writer symbol(s) {', '.join(missing)} "
                "and has no enum default",
            )


def problems(reader: Any, writer: Any) -> list[str]:
    """Why data written with parsed ``writer`` cannot be read with parsed ``reader``."""
    rn = reader.get("__named_schemas", {}) if isinstance(reader, Mapping) else {}
    wn = writer.get("__named_schemas", {}) if isinstance(writer, Mapping) else {}
    checker = _Checker(rn, wn)
    checker.check(reader, writer, "")
    return checker.out


def check_versions(current: SchemaVersion, old: SchemaVersion, mode: Compat) -> list[str]:
    """Problems between a current schema and one version it replaces, one line each."""
    lines: list[str] = []
    if mode in ("backward", "full"):
        lines += [
            f"{current.name}: BACKWARD: current cannot read v{old.version} data: {p}"
            for p in problems(current.parsed, old.parsed)
        ]
    if mode in ("forward", "full"):
        lines += [
            f"{current.name}: FORWARD: v{old.version} cannot read current data: {p}"
            for p in problems(old.parsed, current.parsed)
        ]
    return lines


def check_store(store: SchemaStore, mode: Compat = "backward") -> tuple[list[str], int]:
    """``(problems, number of version pairs checked)`` for every schema with history."""
    lines: list[str] = []
    pairs = 0
    for name in sorted({*store.names(), *store.with_history()}):
        current = store.version(name)
        for old in store.history(name):
            pairs += 1
            lines += check_versions(current, old, mode)
    return lines, pairs
