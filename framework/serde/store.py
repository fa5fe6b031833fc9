"""The schema store: every ``.avsc`` under the schema directories, parsed once.

Layout convention (see docs/wire-formats.md):

- ``<dir>/**/<Name>.avsc`` (outside any ``history`` directory) is a *current*
  schema. Named types are shared across files, so one file may reference a type
  defined in another.
- ``<dir>/**/history/<Name>.v<N>.avsc`` is version ``N`` of a schema that the
  current one replaces (1 = oldest). History versions are used to resolve writer
  schemas by fingerprint and by ``ktf schemas check``; ``names()`` and ``get()``
  only ever return current schemas.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastavro import parse_schema
from fastavro.schema import UnknownType

from framework.errors import SchemaError
from framework.serde.codec import AvroCodec, Codec, WireFormat
from framework.serde.names import comparable, defined_names, rabin_fingerprint, top_name

HISTORY_DIR = "history"
_HISTORY_FILE = re.compile(r"^(?P<stem>.+)\.v(?P<version>[0-9]+)\.avsc$")


@dataclass(frozen=True)
class SchemaVersion:
    """One schema file: a current schema (``version`` None) or a history version."""

    name: str
    version: int | None
    path: Path
    raw: Any = field(repr=False)
    parsed: Any = field(repr=False)
    fingerprint: bytes

    @property
    def label(self) -> str:
        """``Name`` for the current version, ``Name v3`` for a history one."""
        return self.name if self.version is None else f"{self.name} v{self.version}"


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SchemaError(f"{path}: cannot read schema file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise SchemaError(f"{path}: schema file is not UTF-8: {exc}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SchemaError(
            f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from exc


def _parse(path: Path | str, raw: Any, named: dict[str, Any]) -> Any:
    """Parse ``raw`` against ``named`` (mutated with the new definitions)."""
    try:
        return parse_schema(raw, named)
    except UnknownType:
        raise
    except Exception as exc:  # fastavro raises several types for invalid schemas
        raise SchemaError(f"{path}: invalid Avro schema: {exc}") from exc


class SchemaStore:
    """Parsed Avro schemas by full name, with their history versions.

    Build with :meth:`load`; the store is immutable afterwards and safe to share.
    """

    def __init__(
        self,
        current: Mapping[str, SchemaVersion],
        history: Mapping[str, list[SchemaVersion]],
        named: Mapping[str, Any],
    ) -> None:
        self._current = dict(current)
        self._history = {k: sorted(v, key=lambda s: s.version or 0) for k, v in history.items()}
        self._named = dict(named)
        self._by_fingerprint: dict[bytes, SchemaVersion] = {}
        for version in [*self._current.values(), *(v for h in self._history.values() for v in h)]:
            # A history version identical to the current one shares its fingerprint;
            # the current one wins so decoding takes the no-resolution path.
            self._by_fingerprint.setdefault(version.fingerprint, version)

    # -- loading -----------------------------------------------------------------

    @classmethod
    def load(cls, dirs: Iterable[str | Path]) -> SchemaStore:
        """Parse every ``.avsc`` under ``dirs`` (recursively), once.

        Raises :class:`SchemaError` naming the file and the reason when a file does
        not parse, references an unknown type, or defines a name another file
        defines differently.
        """
        current_files: list[tuple[Path, Any]] = []
        history_files: list[tuple[Path, Any, int]] = []
        for directory in dirs:
            root = Path(directory)
            if not root.is_dir():
                raise SchemaError(f"{root}: schema directory does not exist")
            for path in sorted(root.rglob("*.avsc")):
                raw = _read_json(path)
                if HISTORY_DIR in path.relative_to(root).parts[:-1]:
                    match = _HISTORY_FILE.match(path.name)
                    if not match:
                        raise SchemaError(f"{path}: history files must be named <Name>.v<N>.avsc")
                    history_files.append((path, raw, int(match["version"])))
                else:
                    current_files.append((path, raw))

        named, parsed_current = cls._parse_current(current_files)
        current: dict[str, SchemaVersion] = {}
        for path, raw in current_files:
            parsed = parsed_current[path]
            name = top_name(raw)
            if name in current:
                raise SchemaError(
                    f"{path}: {name} is already the top-level schema of {current[name].path}"
                )
            current[name] = SchemaVersion(name, None, path, raw, parsed, rabin_fingerprint(parsed))

        history: dict[str, list[SchemaVersion]] = {}
        for path, raw, number in history_files:
            name = top_name(raw)
            if name not in current:
                raise SchemaError(
                    f"{path}: history version of {name}, but no current schema defines {name}"
                )
            parsed = cls._parse_standalone(path, raw, named)
            versions = history.setdefault(name, [])
            clash = next((v for v in versions if v.version == number), None)
            if clash is not None:
                raise SchemaError(f"{path}: {name} v{number} is also defined by {clash.path}")
            versions.append(
                SchemaVersion(name, number, path, raw, parsed, rabin_fingerprint(parsed))
            )
        return cls(current, history, named)

    @staticmethod
    def _parse_current(
        files: list[tuple[Path, Any]],
    ) -> tuple[dict[str, Any], dict[Path, Any]]:
        # Files may reference types defined in files parsed later: parse what can be
        # parsed, then retry the rest, until a pass makes no progress.
        named: dict[str, Any] = {}
        owner: dict[str, Path] = {}
        parsed: dict[Path, Any] = {}
        pending = list(files)
        while pending:
            blocked: list[tuple[Path, Any, UnknownType]] = []
            for path, raw in pending:
                attempt = dict(named)
                try:
                    parsed[path] = _parse(path, raw, attempt)
                except UnknownType as exc:
                    blocked.append((path, raw, exc))
                    continue
                for name, _ in defined_names(raw):
                    if name in named and comparable(named[name]) != comparable(attempt[name]):
                        raise SchemaError(f"{path}: defines {name} differently from {owner[name]}")
                    owner.setdefault(name, path)
                named = attempt
            if len(blocked) == len(pending):
                first_path, _, unknown = blocked[0]
                raise SchemaError(
                    f"{first_path}: unknown type {unknown.name!r} (not defined in this file or "
                    "any other current .avsc)"
                ) from unknown
            pending = [(p, r) for p, r, _ in blocked]
        return named, parsed

    @staticmethod
    def _parse_standalone(origin: Path | str, raw: Any, named: Mapping[str, Any]) -> Any:
        # Its own definitions replace the current ones (an older version of a type
        # is, by design, a different definition of the same name).
        own = {name for name, _ in defined_names(raw)}
        scope = {k: v for k, v in named.items() if k not in own}
        try:
            return _parse(origin, raw, scope)
        except UnknownType as exc:
            raise SchemaError(f"{origin}: unknown type {exc.name!r}") from exc

    def parse(self, raw: Any, origin: str = "inline schema") -> Any:
        """Parse a schema not in the store (a registry's writer schema, say) against
        the store's named types; its own definitions take precedence."""
        return self._parse_standalone(origin, raw, self._named)

    # -- lookup ------------------------------------------------------------------

    def names(self) -> list[str]:
        """Full names of the current record schemas, sorted."""
        return sorted(n for n, v in self._current.items() if v.raw.get("type") == "record")

    def get(self, name: str) -> Any:
        """The parsed current schema named ``name`` (a full name)."""
        return self.version(name).parsed

    def version(self, name: str) -> SchemaVersion:
        """The current :class:`SchemaVersion` named ``name``."""
        found = self._current.get(name)
        if found is None:
            raise SchemaError(self._unknown(name))
        return found

    def history(self, name: str) -> list[SchemaVersion]:
        """The versions ``name`` replaces, oldest first (empty if none)."""
        self.version(name)
        return list(self._history.get(name, ()))

    def with_history(self) -> list[str]:
        """Full names of the current schemas that have history versions, sorted."""
        return sorted(n for n, versions in self._history.items() if versions)

    def by_fingerprint(self, fingerprint: bytes) -> SchemaVersion | None:
        """The current or history schema with this 8-byte CRC-64-AVRO fingerprint."""
        return self._by_fingerprint.get(bytes(fingerprint))

    @property
    def named_types(self) -> Mapping[str, Any]:
        """Every named type the current schemas define, by full name."""
        return self._named

    def _unknown(self, name: str) -> str:
        known = list(self._current)
        short = name.rpartition(".")[2]
        close = [n for n in known if n.rpartition(".")[2] == short]
        close += [n for n in difflib.get_close_matches(name, known, n=3) if n not in close]
        hint = f"; did you mean {', '.join(close[:3])}?" if close else ""
        return f"unknown schema {name!r}{hint} (known: {len(known)} schemas)"

    def resolve(self, ref: str | Path | Mapping[str, Any] | list[Any]) -> tuple[str, Any]:
        """``(full_name, parsed)`` for a full name, an ``.avsc`` path or a schema dict.

        A file or dict equal to a current schema resolves to the store's own parsed
        schema (so codecs share it); other schemas are parsed against the store's
        named types.
        """
        if isinstance(ref, str) and ref in self._current:
            return ref, self._current[ref].parsed
        if isinstance(ref, (str, Path)):
            path = Path(ref)
            if not (path.suffix == ".avsc" or path.is_file()):
                raise SchemaError(self._unknown(str(ref)))
            if not path.is_file():
                raise SchemaError(f"{path}: schema file does not exist")
            raw, origin = _read_json(path), str(path)
        else:
            raw, origin = ref, "inline schema"
        name = top_name(raw)
        mine = self._current.get(name)
        parsed = self._parse_standalone(origin, raw, self._named)
        if mine is not None and comparable(mine.parsed) == comparable(parsed):
            return name, mine.parsed
        return name, parsed

    # -- codecs ------------------------------------------------------------------

    def codec(
        self,
        ref: str | Path | Mapping[str, Any],
        wire: WireFormat = "avro",
        *,
        writer: str | Path | Mapping[str, Any] | None = None,
        registry: Any = None,
        subject: str | None = None,
        auto_register: bool = True,
    ) -> Codec:
        """A codec for ``ref`` (the reader schema) in the ``wire`` format.

        ``writer`` (plain Avro only): the schema producers write with, when it is
        not the reader schema. ``registry``, ``subject`` and ``auto_register``
        (Confluent only): a ``SchemaRegistryClient`` or its config dict, the
        subject to register/look up the writer schema under when encoding
        (default ``<schema name>-value``), and whether encoding may register it.
        """
        name, parsed = self.resolve(ref)
        if wire == "avro":
            writer_parsed = None if writer is None else self.resolve(writer)[1]
            return AvroCodec(name, parsed, writer_parsed)
        if writer is not None:
            raise SchemaError(
                f"{name}: a writer schema is only configurable for wire 'avro'; "
                f"{wire!r} records carry their own"
            )
        if wire == "single-object":
            from framework.serde.single_object import SingleObjectCodec

            return SingleObjectCodec(name, parsed, self)
        if wire == "confluent":
            from framework.serde.confluent import ConfluentCodec

            return ConfluentCodec(
                name,
                parsed,
                self,
                registry=registry,
                subject=subject,
                auto_register=auto_register,
            )
        raise SchemaError(
            f"{name}: unknown wire format {wire!r} (expected avro, single-object or confluent)"
        )
