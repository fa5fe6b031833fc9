"""Avro naming helpers that work on raw (unparsed) JSON schemas.

fastavro silently lets a later definition of a named type overwrite an earlier one,
and its canonical form does not expand references to types defined in other files.
These helpers fill both gaps without depending on fastavro internals.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from fastavro.schema import fingerprint, to_parsing_canonical_form

NAMED_TYPES = frozenset({"record", "error", "enum", "fixed"})
PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})


def full_name(name: str, namespace: str | None) -> str:
    """The Avro full name of ``name`` seen inside ``namespace``."""
    if "." in name or not namespace:
        return name
    return f"{namespace}.{name}"


def _namespace_of(fullname: str) -> str | None:
    return fullname.rpartition(".")[0] or None


def defined_names(schema: Any, namespace: str | None = None) -> Iterator[tuple[str, Any]]:
    """Yield ``(full_name, definition)`` for every named type defined inline in ``schema``."""
    if isinstance(schema, list):
        for branch in schema:
            yield from defined_names(branch, namespace)
        return
    if not isinstance(schema, Mapping):
        return
    kind = schema.get("type")
    if kind in NAMED_TYPES and "name" in schema:
        ns = schema.get("namespace", namespace)
        name = full_name(str(schema["name"]), ns)
        yield name, schema
        inner_ns = _namespace_of(name)
        for field in schema.get("fields", ()) if kind in ("record", "error") else ():
            yield from defined_names(field.get("type"), inner_ns)
        return
    if kind == "array":
        yield from defined_names(schema.get("items"), namespace)
    elif kind == "map":
        yield from defined_names(schema.get("values"), namespace)
    elif isinstance(kind, (Mapping, list)):
        yield from defined_names(kind, namespace)


def top_name(schema: Any) -> str:
    """The full name of a schema's top-level named type, else its type name."""
    if isinstance(schema, Mapping):
        kind = schema.get("type")
        if kind in NAMED_TYPES and "name" in schema:
            return full_name(str(schema["name"]), schema.get("namespace"))
        return str(kind)
    if isinstance(schema, list):
        return "union"
    return str(schema)


def expand_first(schema: Any, named: Mapping[str, Any]) -> Any:
    """Return a parsed schema with each named reference replaced by its definition at
    its first occurrence (later ones stay names), as Java's ``Schema.toString`` does.

    This is the form whose Parsing Canonical Form other Avro implementations hash for
    the single-object fingerprint, so a type defined in another file must be inlined.
    """
    seen: set[str] = set()

    def walk(node: Any) -> Any:
        if isinstance(node, str):
            if node in PRIMITIVES or node in seen or node not in named:
                return node
            return walk(named[node])
        if isinstance(node, list):
            return [walk(branch) for branch in node]
        if not isinstance(node, Mapping):
            return node
        out = {k: v for k, v in node.items() if not k.startswith("__")}
        kind = out.get("type")
        if kind in NAMED_TYPES and "name" in out:
            seen.add(str(out["name"]))
            if "fields" in out:
                out["fields"] = [{**f, "type": walk(f["type"])} for f in out["fields"]]
        elif kind == "array":
            out["items"] = walk(out["items"])
        elif kind == "map":
            out["values"] = walk(out["values"])
        elif isinstance(kind, (str, list, Mapping)):
            out["type"] = walk(kind)
        return out

    return walk(schema)


def canonical_form(parsed: Any) -> str:
    """Parsing Canonical Form of a parsed schema, references to other files inlined."""
    named = parsed.get("__named_schemas", {}) if isinstance(parsed, Mapping) else {}
    return str(to_parsing_canonical_form(expand_first(parsed, named)))


def rabin_fingerprint(parsed: Any) -> bytes:
    """The 8-byte little-endian CRC-64-AVRO fingerprint used by single-object encoding."""
    # fastavro already renders the 64-bit value little-endian, as the wire carries it.
    return bytes.fromhex(str(fingerprint(canonical_form(parsed), "CRC-64-AVRO")))


def comparable(definition: Any) -> str:
    """A stable text of a definition ignoring documentation, to spot conflicting ones."""

    def strip(node: Any) -> Any:
        if isinstance(node, Mapping):
            return {k: strip(v) for k, v in node.items() if k != "doc" and not k.startswith("__")}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    return json.dumps(strip(definition), sort_keys=True)
