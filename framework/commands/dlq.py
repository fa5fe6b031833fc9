"""``ktf dlq list|show|replay <topic>``: inspect and replay dead letters.

``<topic>`` is a task topic (its ``<topic>.dlq`` is read) or a dead-letter topic.
Nothing here joins a consumer group, commits offsets or deletes records.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from framework import headers as h
from framework.commands._common import add_connection_args, settings_from
from framework.config import Settings
from framework.errors import FrameworkError, KafkaError
from framework.routing import dlq

_SKIP = (
    "func",
    "topic",
    "error_type",
    "since",
    "until",
    "count",
    "dry_run",
    "timeout",
    "partition",
    "offset",
    "schema",
    "dlq_command",
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("dlq", help="list, show and replay dead letters")
    dsub = p.add_subparsers(dest="dlq_command", metavar="ACTION")
    dsub.required = True

    ls = dsub.add_parser("list", help="one line per dead letter (no group, no commits)")
    _filters(ls)
    ls.set_defaults(func=run_list)

    show = dsub.add_parser("show", help="one dead letter: every header and the decoded payload")
    show.add_argument("topic", help="task topic or its .dlq topic")
    show.add_argument("--partition", type=int, required=True)
    show.add_argument("--offset", type=int, required=True)
    show.add_argument(
        "--schema", help="Avro full name to decode the payload with (default: the handler's)"
    )
    show.add_argument(
        "--schemas-dir", dest="schemas_dir", help="Avro schemas (env KTF_SCHEMAS_DIR)"
    )
    show.add_argument(
        "--handlers",
        type=lambda s: tuple(x for x in s.split(",") if x),
        metavar="MOD[,MOD...]",
        help="handler modules used to find the schema of the original topic",
    )
    show.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")
    add_connection_args(show)
    show.set_defaults(func=run_show)

    rp = dsub.add_parser(
        "replay",
        help="send dead letters back to their original topic (attempt reset to 1)",
        description=(
            "Produce each selected dead letter's original key and value to its "
            "ktf-original-topic with ktf-attempt=1, without the error and not-before "
            "headers, and with ktf-replayed-from=<dlq>/<partition>/<offset>. The "
            "dead-letter topic is not changed."
        ),
    )
    _filters(rp)
    rp.add_argument("--dry-run", action="store_true", help="show what would be replayed")
    rp.set_defaults(func=run_replay)


def _filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("topic", help="task topic or its .dlq topic")
    p.add_argument("--error-type", dest="error_type", help="only this ktf-error-type")
    p.add_argument("--since", help="failed at or after: ISO 8601 time or epoch ms")
    p.add_argument("--until", help="failed before: ISO 8601 time or epoch ms")
    p.add_argument("--count", type=int, help="at most this many records")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds (default 60)")
    add_connection_args(p)


def _settings(args: argparse.Namespace) -> Settings:
    ns = argparse.Namespace(**{k: v for k, v in vars(args).items() if k not in _SKIP})
    return settings_from(ns)


def _filter(args: argparse.Namespace) -> dlq.DlqFilter:
    if args.count is not None and args.count < 1:
        raise FrameworkError(f"--count must be >= 1, got {args.count}")
    return dlq.DlqFilter(
        error_type=args.error_type,
        since_ms=dlq.parse_time(args.since) if args.since else None,
        until_ms=dlq.parse_time(args.until) if args.until else None,
        count=args.count,
    )


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


def run_list(args: argparse.Namespace) -> int:
    n = 0
    for rec in dlq.read(_settings(args), args.topic, _filter(args), timeout=args.timeout):
        hm = rec.header_map
        message = hm.get(h.ERROR_MESSAGE, "").replace("\n", " ")
        print(
            f"{rec.partition}/{rec.offset}  {_iso(rec.failed_at)}  "
            f"{hm.get(h.ERROR_TYPE, '-')}  attempt={hm.get(h.ATTEMPT, '-')}  "
            f"task={hm.get(h.TASK_ID, '-')}  {message[:120]}"
        )
        n += 1
    print(f"{n} dead letters in {dlq.dlq_name(args.topic)}", file=sys.stderr)
    return 0


def run_show(args: argparse.Namespace) -> int:
    settings = _settings(args)
    rec = _find(settings, args.topic, args.partition, args.offset, args.timeout)
    print(f"record   {rec.where}  timestamp {rec.timestamp} ({_iso(rec.timestamp)})")
    print(f"key      {rec.key!r}")
    for name, value in rec.headers:
        text = value.decode("utf-8", "replace") if value is not None else None
        if name == h.ERROR_STACK and text:
            print(f"header   {name}:")
            for line in text.rstrip().splitlines():
                print(f"           {line}")
        else:
            print(f"header   {name}: {text}")
    print(f"payload  {len(rec.value or b'')} bytes")
    decoded = _decode(settings, rec, args.schema)
    if decoded is not None:
        print(json.dumps(decoded, indent=2, default=str, ensure_ascii=False))
    elif rec.value:
        print(f"         hex: {rec.value[:64].hex()}{'...' if len(rec.value) > 64 else ''}")
    return 0


def _find(
    settings: Settings, topic: str, partition: int, offset: int, timeout: float
) -> dlq.DlqRecord:
    for rec in dlq.read(settings, topic, timeout=timeout):
        if rec.partition == partition and rec.offset == offset:
            return rec
    raise KafkaError(f"no record at {dlq.dlq_name(topic)}/{partition}/{offset}")


def _decode(settings: Settings, rec: dlq.DlqRecord, schema: str | None) -> Any:
    """The payload decoded with the given schema or the original topic's handler's."""
    if rec.value is None:
        return None
    try:
        from framework.registry import load_handlers
        from framework.serde import SchemaStore

        store = SchemaStore.load([settings.schemas_dir])
        wire = "avro"
        if schema is None:
            original = rec.header_map.get(h.ORIGINAL_TOPIC)
            spec = load_handlers(settings.handlers).get(original) if original else None
            if spec is None:
                print("         (schema unknown: pass --schema or --handlers to decode)")
                return None
            schema_ref: Any = spec.schema
            wire = spec.wire_format
        else:
            schema_ref = schema
        return store.codec(schema_ref, wire=wire).decode(rec.value)  # type: ignore[arg-type]
    except FrameworkError as exc:
        print(f"         (not decodable: {exc})")
        return None


def run_replay(args: argparse.Namespace) -> int:
    settings = _settings(args)
    flt = _filter(args)
    verb = "would replay" if args.dry_run else "replayed"

    def progress(stats: dlq.ReplayStats, rec: dlq.DlqRecord) -> None:
        if args.dry_run:
            print(f"{rec.where} -> {dlq.replay_target(rec)}  {rec.error_type}")
        if stats.selected % 100 == 0:
            print(f"... {stats.selected} {verb}", file=sys.stderr)

    stats = dlq.replay(
        settings, args.topic, flt, dry_run=args.dry_run, progress=progress, timeout=args.timeout
    )
    targets = ", ".join(f"{t}: {n}" for t, n in sorted(stats.targets.items())) or "none"
    print(
        f"{verb} {stats.selected} dead letters from {dlq.dlq_name(args.topic)} ({targets}); "
        "the dead-letter topic is unchanged",
        file=sys.stderr,
    )
    return 0
