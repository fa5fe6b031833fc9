"""The Confluent Schema Registry wire format: ``00`` + 4-byte big-endian id + body.

Writer schemas are fetched from the registry by id (once per id, then cached
parsed) and resolved to the codec's reader schema. Encoding registers (or looks
up) the reader schema under a subject, once, and prefixes its id.

``confluent_kafka.schema_registry`` needs the ``schemaregistry`` extra of
confluent-kafka (httpx, authlib, ...); it is imported on first use only, so the
other wire formats work without it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from framework.errors import EncodeError, SchemaError
from framework.serde.codec import Codec, RecordDecodeError, WireFormat
from framework.serde.names import comparable, expand_first

if TYPE_CHECKING:
    from framework.serde.store import SchemaStore

MAGIC = b"\x00"
HEADER_SIZE = 5


def _registry_module() -> Any:
    try:
        import confluent_kafka.schema_registry as sr
    except ImportError as exc:
        raise SchemaError(
            "wire format 'confluent' needs the schema registry client: "
            f"pip install 'confluent-kafka[schemaregistry]' ({exc})"
        ) from exc
    return sr


def schema_json(parsed: Any) -> str:
    """The JSON text registered for a parsed schema (other files' types inlined)."""
    named = parsed.get("__named_schemas", {}) if isinstance(parsed, Mapping) else {}
    return json.dumps(expand_first(parsed, named), separators=(",", ":"))


class ConfluentCodec(Codec):
    """Codec for the Confluent wire format (see module docstring).

    ``registry`` is a ``SchemaRegistryClient`` or its configuration dict (a
    ``mock://`` url gives confluent-kafka's in-process mock). ``subject`` defaults
    to the schema's full name (the RecordNameStrategy); pass ``<topic>-value``
    for the TopicNameStrategy.
    """

    wire: ClassVar[WireFormat] = "confluent"

    def __init__(
        self,
        schema_name: str,
        schema: Any,
        store: SchemaStore,
        *,
        registry: Any = None,
        subject: str | None = None,
        auto_register: bool = True,
    ) -> None:
        super().__init__(schema_name, schema)
        if registry is None:
            raise SchemaError(f"{schema_name}: wire format 'confluent' needs a schema registry")
        self._store = store
        self._registry_conf = registry if isinstance(registry, Mapping) else None
        self._client: Any = None if isinstance(registry, Mapping) else registry
        self.subject = subject or schema_name
        self.auto_register = auto_register
        self._comparable = comparable(schema)
        self._schema_id: int | None = None
        self._writers: dict[int, tuple[Any, str]] = {}
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        """The registry client (built on first use from the config dict, if given)."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    sr = _registry_module()
                    self._client = sr.SchemaRegistryClient.new_client(
                        dict(self._registry_conf or {})
                    )
        return self._client

    def close(self) -> None:
        """Close the registry client if this codec built it from a config dict."""
        client, owned = self._client, self._registry_conf is not None
        if client is not None and owned:
            self._client = None
            close = getattr(client, "close", None)
            if callable(close):
                close()

    # -- encoding ----------------------------------------------------------------

    @property
    def schema_id(self) -> int:
        """The registry id of the reader schema under :attr:`subject` (looked up once)."""
        if self._schema_id is None:
            self._schema_id = self._register()
        return self._schema_id

    def _register(self) -> int:
        sr = _registry_module()
        schema = sr.Schema(schema_json(self.schema), "AVRO")
        try:
            if self.auto_register:
                return int(self.client.register_schema(self.subject, schema))
            return int(self.client.lookup_schema(self.subject, schema).schema_id)
        except sr.SchemaRegistryError as exc:
            action = "register" if self.auto_register else "find"
            raise EncodeError(
                f"{self.schema_name}: cannot {action} the schema under subject "
                f"{self.subject!r}: {exc}",
                retriable=exc.http_status_code >= 500,
            ) from exc
        except Exception as exc:
            raise EncodeError(
                f"{self.schema_name}: schema registry unavailable for subject "
                f"{self.subject!r}: {type(exc).__name__}: {exc}",
                retriable=True,
            ) from exc

    def _frame(self) -> bytes:
        return MAGIC + self.schema_id.to_bytes(4, "big")

    # -- decoding ----------------------------------------------------------------

    def decode(self, data: bytes) -> Any:
        if len(data) < HEADER_SIZE:
            raise self._error(
                "truncated", f"Confluent header needs {HEADER_SIZE} bytes, got {len(data)}"
            )
        if data[0] != 0:
            raise self._error(
                "bad-magic", f"expected magic byte 00, got {data[0]:02X} ({len(data)} bytes)"
            )
        schema_id = int.from_bytes(data[1:HEADER_SIZE], "big")
        entry = self._writers.get(schema_id)
        if entry is None:
            entry = self._fetch(schema_id)
        return self._read(data, HEADER_SIZE, entry[0], entry[1])

    def _fetch(self, schema_id: int) -> tuple[Any, str]:
        sr = _registry_module()
        try:
            registered = self.client.get_schema(schema_id)
        except sr.SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                raise self._error(
                    "unknown-schema-id", f"schema id {schema_id} is not in the registry: {exc}"
                ) from exc
            raise self._error(
                "registry-unavailable",
                f"registry error fetching schema id {schema_id}: {exc}",
                retriable=exc.http_status_code >= 500 or exc.http_status_code in (408, 429),
            ) from exc
        except RecordDecodeError:
            raise
        except Exception as exc:
            raise self._error(
                "registry-unavailable",
                f"cannot fetch schema id {schema_id}: {type(exc).__name__}: {exc}",
                retriable=True,
            ) from exc
        kind = (registered.schema_type or "AVRO").upper()
        if kind != "AVRO":
            raise self._error("schema-mismatch", f"schema id {schema_id} is a {kind} schema")
        label = f" (writer schema id {schema_id})"
        try:
            raw = json.loads(registered.schema_str)
            parsed = self._store.parse(raw, f"schema id {schema_id}")
        except (ValueError, SchemaError) as exc:
            raise self._error(
                "schema-mismatch", f"schema id {schema_id} cannot be used as a writer: {exc}"
            ) from exc
        # Same schema as the reader: decode without resolution.
        writer = self.schema if comparable(parsed) == self._comparable else parsed
        entry = (writer, label)
        self._writers[schema_id] = entry
        return entry
