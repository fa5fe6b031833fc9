"""Turn a fastavro validation failure into one line naming the offending field path.

fastavro reports the innermost record's name (``a.Inner.x``) rather than the path
from the task's root (``outer.items[2].x``), and stops at the first error. A user
fixing a payload needs the path, so on the (rare) error path we walk the datum and
the schema ourselves, using fastavro only to ask "is this sub-value valid?".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastavro import _validation_py

from framework.serde.names import NAMED_TYPES, PRIMITIVES

_OPTIONS = {"strict": False, "disable_tuple_notation": True}
_MISSING = object()


def _valid(datum: Any, schema: Any, named: Mapping[str, Any]) -> bool:
    try:
        return bool(
            _validation_py._validate(  # type: ignore[no-untyped-call]
                datum, schema, named, "", False, _OPTIONS
            )
        )
    except Exception:  # a schema shape the helper does not know: treat as invalid
        return False


def _describe_type(schema: Any, named: Mapping[str, Any]) -> str:
    if isinstance(schema, str):
        if schema in PRIMITIVES:
            return schema
        target = named.get(schema)
        kind = target.get("type") if isinstance(target, Mapping) else None
        return f"{kind} {schema}" if kind else schema
    if isinstance(schema, list):
        return "one of " + ", ".join(_describe_type(s, named) for s in schema)
    if isinstance(schema, Mapping):
        kind = schema.get("type")
        if kind in NAMED_TYPES:
            extra = ""
            if kind == "enum":
                extra = " (symbols " + ", ".join(schema.get("symbols", ())) + ")"
            return f"{kind} {schema.get('name')}{extra}"
        if kind == "array":
            return f"array of {_describe_type(schema.get('items'), named)}"
        if kind == "map":
            return f"map of {_describe_type(schema.get('values'), named)}"
        if "logicalType" in schema:
            return f"{schema['logicalType']} ({kind})"
        return _describe_type(kind, named)
    return str(schema)


def _describe_value(datum: Any) -> str:
    text = repr(datum)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{type(datum).__name__} {text}"


def _resolve(schema: Any, named: Mapping[str, Any]) -> Any:
    while isinstance(schema, str) and schema not in PRIMITIVES and schema in named:
        schema = named[schema]
    if isinstance(schema, Mapping) and isinstance(schema.get("type"), (Mapping, list)):
        return _resolve(schema["type"], named)
    return schema


def find_problem(
    datum: Any, schema: Any, named: Mapping[str, Any], path: str = ""
) -> tuple[str, str]:
    """Return ``(field_path, problem)`` for the first invalid part of ``datum``."""
    resolved = _resolve(schema, named)
    kind = resolved.get("type") if isinstance(resolved, Mapping) else None
    where = path or "<root>"
    if kind in ("record", "error") and isinstance(datum, Mapping):
        assert isinstance(resolved, Mapping)
        for field in resolved["fields"]:
            name = field["name"]
            sub = f"{path}.{name}" if path else name
            value = datum.get(name, _MISSING)
            if value is _MISSING:
                if "default" in field or _valid(None, field["type"], named):
                    continue
                return sub, f"missing (expected {_describe_type(field['type'], named)})"
            if not _valid(value, field["type"], named):
                return find_problem(value, field["type"], named, sub)
    elif kind == "array" and isinstance(datum, Sequence) and not isinstance(datum, (str, bytes)):
        assert isinstance(resolved, Mapping)
        for i, item in enumerate(datum):
            if not _valid(item, resolved["items"], named):
                return find_problem(item, resolved["items"], named, f"{path}[{i}]")
    elif kind == "map" and isinstance(datum, Mapping):
        assert isinstance(resolved, Mapping)
        for key, value in datum.items():
            if not isinstance(key, str):
                return f"{path}[{key!r}]", f"map key must be a string, got {_describe_value(key)}"
            if not _valid(value, resolved["values"], named):
                return find_problem(value, resolved["values"], named, f"{path}[{key!r}]")
    elif isinstance(resolved, list):
        # Descend into the one branch whose container shape matches the datum, so a
        # bad field inside an optional record is named rather than the whole union.
        candidates = [b for b in resolved if _shape_matches(datum, _resolve(b, named))]
        if len(candidates) == 1:
            return find_problem(datum, candidates[0], named, path)
    return where, f"expected {_describe_type(schema, named)}, got {_describe_value(datum)}"


def _shape_matches(datum: Any, schema: Any) -> bool:
    kind = schema.get("type") if isinstance(schema, Mapping) else None
    if kind in ("record", "error", "map"):
        return isinstance(datum, Mapping)
    if kind == "array":
        return isinstance(datum, Sequence) and not isinstance(datum, (str, bytes))
    return False


def unknown_fields(record: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    """Top-level keys of ``record`` the schema does not declare (typos, mostly)."""
    declared = {f["name"] for f in schema.get("fields", ())}
    return sorted(str(k) for k in record if k not in declared)
