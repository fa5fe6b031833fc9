"""``ktf call``: send one task and print its reply."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from framework.client import CallError, CallTimeout, Reply, TaskClient
from framework.commands._common import add_connection_args, settings_from
from framework.commands.send import (
    add_schema_args,
    parse_deadline,
    parse_headers,
    quiet_logging,
    registry_of,
    schemas_for,
    to_json,
)
from framework.config import Settings
from framework.errors import ConfigError

#: Exit code when no reply arrived in time (1 = the task failed, 2 = usage/config).
EXIT_TIMEOUT = 3


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "call",
        help="send one task and wait for its reply",
        description=(
            "Send a task with ktf-reply-to and print its reply as one JSON object: "
            '{"status": "ok", "task_id": ..., "result": {...}}, or with error_type and '
            "error_message for error/expired/cancelled. Exit 0 on ok, 1 on another "
            f"status, {EXIT_TIMEOUT} when no reply arrives within --timeout."
        ),
    )
    p.add_argument("topic", metavar="TOPIC")
    p.add_argument("--json", required=True, metavar="JSON", help="the task as a JSON object")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")
    p.add_argument("--key", help="record key")
    p.add_argument(
        "--header", action="append", metavar="NAME=VALUE", help="extra header, repeatable"
    )
    p.add_argument("--deadline", help="default: the timeout; 30s / epoch ms / ISO 8601")
    p.add_argument(
        "--reply-topic", metavar="TOPIC", help="default: ktf.replies.<client id> (created)"
    )
    p.add_argument("--client-id", dest="client_id", help="env KTF_CLIENT_ID (default ktf)")
    add_schema_args(p, result=True)
    add_connection_args(p)
    p.set_defaults(func=run)


def reply_json(reply: Reply) -> dict[str, Any]:
    out: dict[str, Any] = {"status": reply.status, "task_id": reply.task_id}
    if reply.ok:
        out["result"] = reply.result
        if reply.result is None and reply.value is not None:
            out["value_hex"] = reply.value.hex()
    else:
        out["error_type"] = reply.error_type
        out["error_message"] = reply.error_message
    return out


def run(args: argparse.Namespace) -> int:
    quiet_logging()
    if args.timeout <= 0:
        raise ConfigError(f"--timeout must be > 0 seconds, got {args.timeout}")
    timeout = args.timeout
    settings = settings_from(args)
    return asyncio.run(_call(args, settings, timeout))


async def _call(args: argparse.Namespace, settings: Settings, wait_s: float) -> int:
    try:
        payload = json.loads(args.json)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--json: invalid JSON at column {exc.colno}: {exc.msg}") from exc
    schemas, handlers = schemas_for(args, settings, args.topic)
    async with TaskClient(
        settings,
        schemas=schemas,
        handlers=handlers,
        registry=registry_of(args),
        reply_topic=args.reply_topic,
        timeout=min(wait_s, 30.0),
    ) as client:
        try:
            reply = await client.call(
                args.topic,
                payload,
                timeout=wait_s,
                key=args.key,
                deadline=parse_deadline(args.deadline),
                headers=parse_headers(args.header),
            )
        except CallTimeout as exc:
            print(f"ktf call: {exc}", file=sys.stderr)
            return EXIT_TIMEOUT
        except CallError as exc:
            if exc.reply is None:
                raise
            print(to_json(reply_json(exc.reply)))
            return 1
    print(to_json(reply_json(reply)))
    return 0
