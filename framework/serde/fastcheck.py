"""A compiled, conservative validity check for the common case.

fastavro's ``validate`` walks the schema generically for every record, which costs
more than encoding itself. :func:`compile_check` turns a parsed schema into nested
closures once, so checking a valid record is a handful of ``type(...) is ...``
tests. The check is *conservative*: it may reject a record that fastavro would
accept (an ``int`` for a ``double``, a logical type), never the reverse, and
callers fall back to the full validator for the precise error message whenever it
says no.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Check = Callable[[Any], bool]

_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1


class _Unsupported(Exception):
    """The schema uses a construct the fast path does not cover."""


def _null(v: Any) -> bool:
    return v is None


def _boolean(v: Any) -> bool:
    return type(v) is bool


def _int(v: Any) -> bool:
    return type(v) is int and _INT_MIN <= v <= _INT_MAX


def _long(v: Any) -> bool:
    return type(v) is int and _LONG_MIN <= v <= _LONG_MAX


def _float(v: Any) -> bool:
    return type(v) is float


def _string(v: Any) -> bool:
    return type(v) is str


def _bytes(v: Any) -> bool:
    return type(v) is bytes


_PRIMITIVES: dict[str, Check] = {
    "null": _null,
    "boolean": _boolean,
    "int": _int,
    "long": _long,
    "float": _float,
    "double": _float,
    "string": _string,
    "bytes": _bytes,
}


def compile_check(schema: Any, named: Mapping[str, Any] | None = None) -> Check | None:
    """A fast validity check for ``schema``, or None if the schema is not covered."""
    cache: dict[str, Check] = {}
    try:
        return _compile(schema, named or {}, cache)
    except _Unsupported:
        return None


def _compile(schema: Any, named: Mapping[str, Any], cache: dict[str, Check]) -> Check:
    if isinstance(schema, str):
        prim = _PRIMITIVES.get(schema)
        if prim is not None:
            return prim
        if schema in cache:
            return cache[schema]
        target = named.get(schema)
        if target is None:
            raise _Unsupported(schema)
        # Recursive types: bind through a cell so the reference resolves lazily.
        cell: list[Check] = []

        def ref(v: Any) -> bool:
            return cell[0](v)

        cache[schema] = ref
        cell.append(_compile(target, named, cache))
        return cell[0]
    if isinstance(schema, list):
        branches = tuple(_compile(b, named, cache) for b in schema)

        def union(v: Any) -> bool:
            return any(b(v) for b in branches)

        return union
    if not isinstance(schema, Mapping):
        raise _Unsupported(repr(schema))
    if "logicalType" in schema:
        raise _Unsupported(schema["logicalType"])
    kind = schema.get("type")
    if kind == "record" or kind == "error":
        name = schema.get("name")
        fields = []
        for f in schema["fields"]:
            has_default = "default" in f
            fields.append((f["name"], _compile(f["type"], named, cache), has_default))
        names = frozenset(n for n, _c, _d in fields)
        fields_t = tuple(fields)

        def record(v: Any) -> bool:
            if type(v) is not dict or not names.issuperset(v):
                return False
            for fname, check, has_default in fields_t:
                if fname in v:
                    if not check(v[fname]):
                        return False
                elif not has_default:
                    return False
            return True

        if isinstance(name, str):
            cache.setdefault(name, record)
        return record
    if kind == "enum":
        symbols = frozenset(schema["symbols"])

        def enum(v: Any) -> bool:
            return type(v) is str and v in symbols

        return enum
    if kind == "array":
        items = _compile(schema["items"], named, cache)

        def array(v: Any) -> bool:
            return type(v) is list and all(items(x) for x in v)

        return array
    if kind == "map":
        values = _compile(schema["values"], named, cache)

        def map_(v: Any) -> bool:
            return type(v) is dict and all(type(k) is str and values(x) for k, x in v.items())

        return map_
    if kind == "fixed":
        size = schema["size"]

        def fixed(v: Any) -> bool:
            return type(v) is bytes and len(v) == size

        return fixed
    if isinstance(kind, str | list | Mapping):
        return _compile(kind, named, cache)
    raise _Unsupported(repr(kind))
