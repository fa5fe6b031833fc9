"""``ktf send``: produce tasks from JSON on the command line or a JSON-lines file.

A file is validated whole before anything is sent: every bad line is reported
(``FILE:LINE: field 'x': ...``) and nothing is sent unless ``--skip-invalid``, which
sends the valid lines and skips the bad ones. Also home of the flags ``ktf call``
and ``ktf tail`` share to find a topic's schema.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import json
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from framework.client import TaskClient, TopicSchema
from framework.client.tasks import Deadline
from framework.commands._common import add_connection_args, settings_from
from framework.config import Settings
from framework.errors import ConfigError, EncodeError
from framework.observability.logging import configure_logging
from framework.registry import HandlerRegistry, load_handlers
from framework.routing.policy import parse_delay
from framework.serde import WIRE_FORMATS

#: Bad lines printed before the rest are only counted.
MAX_REPORTED = 20
_CHUNK = 10_000


# -- flags shared with `ktf call` and `ktf tail` --------------------------------------


def add_schema_args(parser: argparse.ArgumentParser, *, result: bool = False) -> None:
    """``--handlers``, ``--schema``, ``--wire``, ``--schemas-dir`` (and ``--result-schema``)."""
    group = parser.add_argument_group("schema (how TOPIC's records are encoded)")
    group.add_argument(
        "--handlers",
        type=lambda s: tuple(x for x in s.split(",") if x),
        metavar="MOD[,MOD...]",
        help="take TOPIC's schema and wire format from these handler modules (env "
        "KTF_HANDLERS); default: the 'framework.handlers' entry-point plugins",
    )
    group.add_argument(
        "--schema",
        metavar="NAME|FILE.avsc",
        help="TOPIC's Avro schema (a full name from the schemas directory, or a file); "
        "overrides --handlers",
    )
    if result:
        group.add_argument(
            "--result-schema", metavar="NAME|FILE.avsc", help="the reply's schema (with --schema)"
        )
    group.add_argument(
        "--wire", choices=WIRE_FORMATS, default="avro", help="wire format with --schema"
    )
    group.add_argument("--schemas-dir", dest="schemas_dir", metavar="DIR", help="default: schemas")
    group.add_argument(
        "--registry-url",
        metavar="URL",
        help="Schema Registry URL for the confluent wire format",
    )


def schemas_for(
    args: argparse.Namespace, settings: Settings, topic: str
) -> tuple[dict[str, TopicSchema], HandlerRegistry | None]:
    """The topic -> schema mapping the flags ask for (--schema wins over handlers)."""
    if args.schema:
        decl = TopicSchema(args.schema, getattr(args, "result_schema", None), args.wire)
        return {topic: decl}, None
    return {}, load_handlers(settings.handlers)


def registry_of(args: argparse.Namespace) -> dict[str, str] | None:
    return {"url": args.registry_url} if args.registry_url else None


def parse_headers(pairs: list[str] | None) -> dict[str, str]:
    """``--header k=v`` pairs as a dict; ConfigError naming a malformed one."""
    out: dict[str, str] = {}
    for pair in pairs or ():
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ConfigError(f"--header {pair!r}: expected NAME=VALUE")
        out[name] = value
    return out


def parse_deadline(text: str | None) -> Deadline | None:
    """``30s``/``5m``/``500ms`` (from now), epoch milliseconds, or an ISO 8601 instant."""
    if text is None:
        return None
    if text.isdigit():
        return int(text)
    if text[:1].isdigit() and text[-1:].isalpha() and "-" not in text:
        return float(parse_delay(text))
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"--deadline {text!r}: expected a delay (30s, 5m), epoch milliseconds or an "
            "ISO 8601 time"
        ) from None


def parse_when(delay: str | None, run_at: str | None) -> tuple[float | None, dt.datetime | None]:
    """``--delay 10m`` as seconds and ``--run-at`` as a datetime (ConfigError naming the flag)."""
    seconds = None
    if delay is not None:
        try:
            seconds = parse_delay(delay)
        except ConfigError:
            raise ConfigError(
                f"--delay {delay!r}: expected a delay like 500ms, 30s, 10m, 2h or 1d"
            ) from None
    when = None
    if run_at is not None:
        try:
            when = dt.datetime.fromisoformat(run_at)
        except ValueError:
            raise ConfigError(
                f"--run-at {run_at!r}: expected an ISO 8601 time such as 2030-01-01T09:00:00Z"
            ) from None
    return seconds, when


def to_json(value: Any) -> str:
    """JSON for decoded Avro values (bytes as base64, decimals and times as strings)."""
    return json.dumps(value, default=_json_default, ensure_ascii=False, separators=(",", ":"))


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Decimal | dt.date | dt.time | dt.datetime):
        return str(value)
    if isinstance(value, Mapping):
        return dict(value)
    return repr(value)


def quiet_logging() -> None:
    """Keep the client's logs off stdout (stdout carries the command's output)."""
    configure_logging("WARNING", "console", stream=sys.stderr)


# -- ktf send ----------------------------------------------------------------------


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "send",
        help="produce tasks (JSON, schema-checked) to a topic",
        description=(
            "Encode tasks with TOPIC's Avro schema and produce them with the contract "
            "headers; prints each task id. --file: one JSON object per line; the whole "
            "file is validated first, every bad line is reported as FILE:LINE: ... and "
            "nothing is sent unless --skip-invalid (then only the valid lines are sent). "
            "Exit 0 when sent, 1 when invalid input stopped the send."
        ),
    )
    p.add_argument("topic", metavar="TOPIC")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--json", metavar="JSON", help="one task as a JSON object")
    src.add_argument("--file", metavar="FILE", help="JSON lines, one task per line ('-' = stdin)")
    p.add_argument(
        "--skip-invalid",
        action="store_true",
        help="send the valid lines of --file and skip (and report) the invalid ones",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="seconds to reach the broker and have each task acknowledged (default 30)",
    )
    p.add_argument("--key", help="record key for every task")
    p.add_argument("--key-field", metavar="FIELD", help="--file: use this field as each key")
    p.add_argument(
        "--header", action="append", metavar="NAME=VALUE", help="extra header, repeatable"
    )
    p.add_argument("--deadline", help="30s / 5m (from now), epoch milliseconds, or ISO 8601 time")
    when = p.add_mutually_exclusive_group()
    when.add_argument(
        "--delay",
        metavar="DELAY",
        help="run the task(s) this much later: 500ms, 30s, 10m, 2h, 1d (at most 7d); the "
        "task waits in the topic's delay tiers (docs/scheduling.md)",
    )
    when.add_argument(
        "--run-at",
        dest="run_at",
        metavar="TIME",
        help="run the task(s) at this ISO 8601 time (e.g. 2030-01-01T09:00:00+01:00)",
    )
    add_schema_args(p)
    add_connection_args(p)
    p.set_defaults(func=run)


@dataclass
class Line:
    number: int
    payload: Any
    key: str | None


def read_lines(path: str, key_field: str | None) -> tuple[list[Line], list[str]]:
    """Parse a JSON-lines file; returns the parsed lines and ``FILE:LINE: ...`` errors."""
    if path == "-":
        text, label = sys.stdin.read(), "<stdin>"
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read: {exc}") from exc
        label = path
    lines: list[Line] = []
    errors: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            payload = json.loads(raw)
        except json.JSONDecodeError as exc:
            errors.append(f"{label}:{number}: invalid JSON at column {exc.colno}: {exc.msg}")
            continue
        key = None
        if key_field is not None:
            if not isinstance(payload, dict) or key_field not in payload:
                errors.append(f"{label}:{number}: --key-field {key_field!r} is not in the task")
                continue
            key = str(payload[key_field])
        lines.append(Line(number, payload, key))
    return lines, errors


def run(args: argparse.Namespace) -> int:
    quiet_logging()
    settings = settings_from(args)
    return asyncio.run(_send(args, settings))


async def _send(args: argparse.Namespace, settings: Settings) -> int:
    schemas, handlers = schemas_for(args, settings, args.topic)
    headers = parse_headers(args.header)
    deadline = parse_deadline(args.deadline)
    delay, run_at = parse_when(args.delay, args.run_at)
    if args.timeout <= 0:
        raise ConfigError(f"--timeout must be > 0 seconds, got {args.timeout}")
    async with TaskClient(
        settings,
        schemas=schemas,
        handlers=handlers,
        registry=registry_of(args),
        timeout=args.timeout,
    ) as client:
        client.codecs(args.topic)  # unknown topic: fail before reading anything
        if args.json is not None:
            try:
                payload = json.loads(args.json)
            except json.JSONDecodeError as exc:
                print(
                    f"ktf send: --json: invalid JSON at column {exc.colno}: {exc.msg}",
                    file=sys.stderr,
                )
                return 1
            try:
                client.validate(args.topic, payload)
            except EncodeError as exc:
                print(f"ktf send: --json: {exc}", file=sys.stderr)
                return 1
            task_id = await client.submit(
                args.topic,
                payload,
                key=args.key,
                deadline=deadline,
                headers=headers,
                delay=delay,
                run_at=run_at,
            )
            print(task_id)
            return 0
        return await _send_file(client, args, deadline, headers, delay, run_at)


async def _send_file(
    client: TaskClient,
    args: argparse.Namespace,
    deadline: Deadline | None,
    headers: dict[str, str],
    delay: float | None = None,
    run_at: dt.datetime | None = None,
) -> int:
    label = "<stdin>" if args.file == "-" else args.file
    lines, errors = read_lines(args.file, args.key_field)
    valid: list[Line] = []
    for line in lines:
        try:
            client.validate(args.topic, line.payload)
        except EncodeError as exc:
            errors.append(f"{label}:{line.number}: {exc}")
            continue
        valid.append(line)
    errors.sort(key=lambda e: int(e[len(label) + 1 :].split(":", 1)[0]))
    for message in errors[:MAX_REPORTED]:
        print(message, file=sys.stderr)
    if len(errors) > MAX_REPORTED:
        print(f"... and {len(errors) - MAX_REPORTED} more invalid line(s)", file=sys.stderr)
    if errors and not args.skip_invalid:
        print(
            f"ktf send: nothing sent: {len(errors)} invalid line(s) in {label} "
            f"(--skip-invalid sends the {len(valid)} valid one(s))",
            file=sys.stderr,
        )
        return 1
    total = len(valid)
    sent = 0
    started = time.monotonic()
    for start in range(0, total, _CHUNK):
        chunk = valid[start : start + _CHUNK]
        keys = [line.key if line.key is not None else args.key for line in chunk]
        ids = await client.submit_many(
            args.topic,
            [line.payload for line in chunk],
            keys=keys,
            deadline=deadline,
            headers=headers,
            delay=delay,
            run_at=run_at,
        )
        sys.stdout.write("".join(f"{i}\n" for i in ids))
        sent += len(ids)
        print(f"sent {sent}/{total}", file=sys.stderr)
    elapsed = time.monotonic() - started
    skipped = f", skipped {len(errors)} invalid line(s)" if errors else ""
    print(
        f"ktf send: sent {sent} task(s) to {args.topic} in {elapsed:.1f}s{skipped}",
        file=sys.stderr,
    )
    return 0
