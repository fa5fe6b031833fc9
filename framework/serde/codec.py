"""Encoding and decoding task records: the codec base and plain schemaless Avro.

A :class:`Codec` is bound to one reader schema (the handler's) and one wire format.
Subclasses only frame the Avro body (a header with a fingerprint or a schema id)
and find the writer schema; the Avro work and the error reporting live here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from io import BytesIO
from typing import Any, ClassVar, Literal, get_args

from fastavro import schemaless_reader, schemaless_writer
from fastavro.read import SchemaResolutionError
from fastavro.validation import validate as _fastavro_validate

from framework.errors import DecodeError, EncodeError
from framework.serde.fastcheck import compile_check
from framework.serde.fields import find_problem, unknown_fields

WireFormat = Literal["avro", "single-object", "confluent"]
WIRE_FORMATS: tuple[str, ...] = get_args(WireFormat)

#: Short codes carried by :attr:`RecordDecodeError.reason` (and the dead-letter header).
DECODE_REASONS = (
    "truncated",
    "trailing-bytes",
    "invalid-avro",
    "schema-mismatch",
    "bad-magic",
    "unknown-fingerprint",
    "unknown-schema-id",
    "registry-unavailable",
)


class RecordDecodeError(DecodeError):
    """A record's bytes cannot be decoded; ``reason`` is a short machine-readable code.

    Every reason but ``registry-unavailable`` marks a poison record: decoding it
    again cannot succeed, so it goes straight to the dead-letter topic.
    """

    def __init__(
        self,
        message: str,
        *,
        reason: str,
        schema_name: str,
        wire: str,
        retriable: bool = False,
    ) -> None:
        super().__init__(message, retriable=retriable)
        self.reason = reason
        self.schema_name = schema_name
        self.wire = wire


class Codec:
    """Encode and decode records of one schema in one wire format.

    Attributes: ``schema_name`` (full name), ``schema`` (parsed reader/writer
    schema), ``wire`` (the :data:`WireFormat`).
    """

    wire: ClassVar[WireFormat] = "avro"

    def __init__(self, schema_name: str, schema: Any) -> None:
        self.schema_name = schema_name
        self.schema = schema
        self._named: Mapping[str, Any] = (
            schema.get("__named_schemas", {}) if isinstance(schema, Mapping) else {}
        )
        self._is_record = isinstance(schema, Mapping) and schema.get("type") == "record"
        # The compiled check accepts most valid records in a fraction of fastavro's
        # validate(); anything it does not accept takes the precise path below.
        self._fast_check = compile_check(schema, self._named)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.schema_name!r}, wire={self.wire!r})"

    # -- public API --------------------------------------------------------------

    def validate(self, record: Any) -> None:
        """Raise :class:`EncodeError` naming the first offending field, if any."""
        fast = self._fast_check
        if fast is not None and fast(record):
            return
        if self._is_record and isinstance(record, Mapping):
            extra = unknown_fields(record, self.schema)
            if extra:
                raise EncodeError(
                    f"{self.schema_name}: field {extra[0]!r}: not in the schema"
                    + (f" (nor {', '.join(map(repr, extra[1:]))})" if len(extra) > 1 else "")
                )
        if _fastavro_validate(record, self.schema, raise_errors=False):
            return
        path, problem = find_problem(record, self.schema, self._named)
        raise EncodeError(f"{self.schema_name}: field {path!r}: {problem}")

    def encode(self, record: Any, *, validate: bool = True) -> bytes:
        """Validate ``record`` and return its bytes in this codec's wire format.

        ``validate=False`` skips the up-front check (about 3x faster) for records
        already validated or built by trusted code; a bad record then fails with a
        less precise EncodeError from fastavro, or may be coerced by it.
        """
        if validate:
            self.validate(record)
        return self._frame() + self._write(record)

    def decode(self, data: bytes) -> Any:
        """Return the record in ``data`` (a dict for record schemas).

        Raises :class:`RecordDecodeError` naming the schema, the wire format and
        the cause (``reason`` says which).
        """
        return self._read(data, 0, self.schema)

    def close(self) -> None:
        """Release connections the codec holds (a schema registry client); idempotent."""

    # -- for subclasses ----------------------------------------------------------

    def _frame(self) -> bytes:
        """The header written before the Avro body (none for plain Avro)."""
        return b""

    def _write(self, record: Any) -> bytes:
        out = BytesIO()
        try:
            schemaless_writer(out, self.schema, record)
        except Exception as exc:  # validate() passed, so this is a fastavro edge case
            raise EncodeError(f"{self.schema_name}: cannot encode record: {exc}") from exc
        return out.getvalue()

    def _error(self, reason: str, detail: str, *, retriable: bool = False) -> RecordDecodeError:
        return RecordDecodeError(
            f"cannot decode {self.schema_name} ({self.wire}): {detail}",
            reason=reason,
            schema_name=self.schema_name,
            wire=self.wire,
            retriable=retriable,
        )

    def _read(self, data: bytes, offset: int, writer: Any, writer_label: str = "") -> Any:
        """Decode the Avro body at ``data[offset:]`` written with ``writer``."""
        buf = BytesIO(data)
        if offset:
            buf.seek(offset)
        # fastavro resolves even identical schemas when given both; skip that work.
        reader = None if writer is self.schema else self.schema
        try:
            record = schemaless_reader(buf, writer, reader)
        except EOFError as exc:
            raise self._error(
                "truncated", f"truncated Avro body ({len(data) - offset} bytes){writer_label}"
            ) from exc
        except SchemaResolutionError as exc:
            raise self._error(
                "schema-mismatch", f"writer schema{writer_label} cannot be read: {exc}"
            ) from exc
        except Exception as exc:
            raise self._error(
                "invalid-avro", f"invalid Avro body{writer_label}: {type(exc).__name__}: {exc}"
            ) from exc
        end = buf.tell()
        if end != len(data):
            raise self._error(
                "trailing-bytes",
                f"{len(data) - end} trailing bytes after the record (body ends at offset "
                f"{end} of {len(data)}){writer_label}",
            )
        return record


class AvroCodec(Codec):
    """Plain schemaless Avro bound to the topic's schema (no header).

    The writer schema is the reader schema unless ``writer`` is given, for topics
    whose producers are known to still write an older version.
    """

    wire: ClassVar[WireFormat] = "avro"

    def __init__(self, schema_name: str, schema: Any, writer: Any | None = None) -> None:
        super().__init__(schema_name, schema)
        self._writer = schema if writer is None else writer

    def decode(self, data: bytes) -> Any:
        return self._read(data, 0, self._writer)


@dataclass(frozen=True, slots=True)
class TopicCodecs:
    """The codecs of one topic: its tasks, and its results when a result schema is known."""

    task: Codec
    result: Codec | None
