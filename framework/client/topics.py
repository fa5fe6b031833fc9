"""Which schema and wire format each topic's tasks (and replies) are written in.

Two sources, both optional, merged with explicit mappings winning:

- ``handlers=("handlers.examples",)``: the ``@handler`` declarations (their task
  schema, result schema and wire format), loaded with :func:`load_handlers`;
- ``schemas={"tasks.word-count": "ktf.examples.WordCountTask"}``: a schema name
  (plain Avro), or a :class:`TopicSchema` for a result schema or another wire format.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from framework.errors import ConfigError
from framework.registry import HandlerRegistry, load_handlers
from framework.serde import WIRE_FORMATS, Codec, SchemaStore, TopicCodecs

SchemaRef = str | dict[str, Any]


@dataclass(frozen=True)
class TopicSchema:
    """How one topic's tasks are encoded: ``schema`` (a full name, ``.avsc`` path or
    schema dict), the optional ``result_schema`` its replies carry, and ``wire``
    (``avro``, ``single-object`` or ``confluent``)."""

    schema: SchemaRef
    result_schema: SchemaRef | None = None
    wire: str = "avro"

    def __post_init__(self) -> None:
        if self.wire not in WIRE_FORMATS:
            raise ConfigError(f"wire format {self.wire!r} is not one of {', '.join(WIRE_FORMATS)}")


def topic_schemas(
    schemas: Mapping[str, str | TopicSchema] | None = None,
    handlers: Sequence[str] | HandlerRegistry | None = None,
) -> dict[str, TopicSchema]:
    """Merge handler declarations and an explicit mapping (the mapping wins)."""
    out: dict[str, TopicSchema] = {}
    if handlers is not None:
        registry = handlers if isinstance(handlers, HandlerRegistry) else load_handlers(handlers)
        for spec in registry.specs:
            out[spec.topic] = TopicSchema(spec.schema, spec.result_schema, spec.wire_format)
    for topic, value in (schemas or {}).items():
        out[topic] = value if isinstance(value, TopicSchema) else TopicSchema(value)
    return out


class CodecCache:
    """Builds each topic's codecs once, on first use, from a :class:`SchemaStore`."""

    def __init__(
        self,
        store: SchemaStore,
        topics: Mapping[str, TopicSchema],
        *,
        registry: Any = None,
    ) -> None:
        self._store = store
        self._topics = dict(topics)
        self._registry = registry
        self._codecs: dict[str, TopicCodecs] = {}

    @property
    def store(self) -> SchemaStore:
        return self._store

    def known(self) -> list[str]:
        return sorted(self._topics)

    def get(self, topic: str) -> TopicCodecs:
        """The codecs of ``topic``; :class:`ConfigError` if no schema is known for it."""
        found = self._codecs.get(topic)
        if found is not None:
            return found
        decl = self._topics.get(topic)
        if decl is None:
            known = ", ".join(self.known()) or "none"
            raise ConfigError(
                f"no schema known for topic {topic!r}: pass schemas={{topic: 'Name'}} or "
                f"handlers=('pkg.module',) (known topics: {known})"
            )
        codecs = TopicCodecs(self._codec(decl.schema, decl.wire), None)
        if decl.result_schema is not None:
            codecs = TopicCodecs(codecs.task, self._codec(decl.result_schema, decl.wire))
        self._codecs[topic] = codecs
        return codecs

    def _codec(self, ref: SchemaRef, wire: str) -> Codec:
        if wire == "confluent":
            return self._store.codec(ref, "confluent", registry=self._registry)
        return self._store.codec(ref, wire)  # type: ignore[arg-type]
