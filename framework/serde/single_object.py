"""Avro single-object encoding: ``C3 01`` + 8-byte CRC-64-AVRO fingerprint + body.

The fingerprint (little-endian, of the writer schema's Parsing Canonical Form)
identifies the writer schema without a registry: it is looked up among the
current and history schemas of the store, and the body is resolved from that
writer schema to the codec's reader schema.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from framework.serde.codec import Codec, WireFormat
from framework.serde.names import rabin_fingerprint

if TYPE_CHECKING:
    from framework.serde.store import SchemaStore

MARKER = b"\xc3\x01"
HEADER_SIZE = len(MARKER) + 8


class SingleObjectCodec(Codec):
    """Codec for the Avro single-object encoding (see module docstring)."""

    wire: ClassVar[WireFormat] = "single-object"

    def __init__(self, schema_name: str, schema: Any, store: SchemaStore) -> None:
        super().__init__(schema_name, schema)
        self._store = store
        self.fingerprint = rabin_fingerprint(schema)
        self._header = MARKER + self.fingerprint
        # fingerprint -> (writer schema, label for errors); the reader's own one first.
        self._writers: dict[bytes, tuple[Any, str]] = {self.fingerprint: (schema, "")}

    def _frame(self) -> bytes:
        return self._header

    def decode(self, data: bytes) -> Any:
        if data[:2] != MARKER:
            got = bytes(data[:2]).hex(" ").upper() or "nothing"
            raise self._error(
                "bad-magic",
                f"expected single-object marker C3 01, got {got} ({len(data)} bytes)",
            )
        if len(data) < HEADER_SIZE:
            raise self._error(
                "truncated", f"single-object header needs {HEADER_SIZE} bytes, got {len(data)}"
            )
        fp = bytes(data[2:HEADER_SIZE])
        entry = self._writers.get(fp)
        if entry is None:
            entry = self._lookup(fp)
        return self._read(data, HEADER_SIZE, entry[0], entry[1])

    def _lookup(self, fp: bytes) -> tuple[Any, str]:
        found = self._store.by_fingerprint(fp)
        if found is None:
            raise self._error(
                "unknown-fingerprint",
                f"unknown writer schema fingerprint {fp.hex()} (not a current or history "
                "schema in the schema directories)",
            )
        entry = (found.parsed, f" (writer {found.label}, {found.path})")
        self._writers[fp] = entry
        return entry
