"""``ktf schedules list|run``: what the periodic schedules do, and firing one by hand."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
import time
from typing import Any

from framework.client import TaskClient
from framework.commands._common import add_connection_args, settings_from
from framework.commands.send import quiet_logging
from framework.config import Settings
from framework.errors import ConfigError, KafkaError
from framework.kafka.admin_ops import GroupOps
from framework.scheduling.catalog import load_schedules
from framework.scheduling.schedule import Schedule
from framework.scheduling.scheduler import SCHEDULE_DUE_HEADER, SCHEDULE_HEADER
from framework.scheduling.state import LEADER_TOPIC, GroupState, leader_group, read_state


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "schedules",
        help="list periodic schedules, fire one now",
        description="Periodic schedules of the handler modules and the config file, as the "
        "worker group's elected leader runs them (docs/scheduling.md).",
    )
    ssub = p.add_subparsers(dest="schedules_command", metavar="ACTION")
    ssub.required = True
    lst = ssub.add_parser(
        "list",
        help="name, expression, next due, last fired, current leader and its epoch",
        description="Each schedule with its expression, next due window, the last window "
        "the leader fired (from ktf.schedules), and the group's current leader and epoch. "
        "The leader is 'none' when no worker of the group owns the leader partition.",
    )
    lst.add_argument("--json", action="store_true", help="one JSON object per schedule")
    _common(lst)
    lst.set_defaults(func=run_list)
    run = ssub.add_parser(
        "run",
        help="fire a schedule now, once",
        description="Produce one task of schedule NAME now (task id NAME@manual-<epoch ms>), "
        "outside its windows: the windows the leader fires are not changed. Prints the id.",
    )
    run.add_argument("name", metavar="NAME")
    run.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")
    _common(run)
    run.set_defaults(func=run_now)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--handlers",
        type=lambda s: tuple(x for x in s.split(",") if x),
        metavar="MOD[,MOD...]",
        help="modules with the @periodic schedules (env KTF_HANDLERS); default: the "
        "entry-point plugins",
    )
    p.add_argument("--group", dest="group_id", help="worker group (env KTF_GROUP_ID)")
    add_connection_args(p)


def _schedules(settings: Settings) -> list[Schedule]:
    found = load_schedules(settings.handlers, settings.schedules)
    if not found:
        raise ConfigError(
            "no schedules found: pass --handlers with @periodic modules, or add "
            "[[ktf.schedules]] entries to the config file"
        )
    return found


def _iso(ms: int | None) -> str:
    if not ms:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="seconds")


def live_owner(settings: Settings) -> str | None:
    """``client-id@host`` of the member owning the leader partition, or None."""
    try:
        desc = GroupOps(settings).describe_group(leader_group(settings.group_id))
    except KafkaError:
        return None
    for member in desc.members:
        if (LEADER_TOPIC, 0) in member.assignment:
            return f"{member.client_id}@{member.host}"
    return None


def rows(settings: Settings, schedules: list[Schedule], state: GroupState) -> list[dict[str, Any]]:
    now = int(time.time() * 1000)
    owner = live_owner(settings)
    leader = state.leader
    out = []
    for schedule in schedules:
        window = state.windows.get(schedule.name)
        out.append(
            {
                "name": schedule.name,
                "expression": schedule.expression,
                "topic": schedule.topic,
                "catch_up": schedule.catch_up,
                "next_due": _iso(
                    schedule.next_due(max(now, window.last_due_ms) if window else now)
                ),
                "last_fired": _iso(window.last_due_ms) if window else "-",
                "last_task_id": window.task_id if window else "",
                "missed": window.missed if window else 0,
                "leader": (leader.leader if leader and owner else "none"),
                "leader_client": owner or "",
                "epoch": leader.epoch if leader else 0,
            }
        )
    return out


def run_list(args: argparse.Namespace) -> int:
    quiet_logging()
    json_out = args.json
    del args.json
    settings = settings_from(args)
    schedules = _schedules(settings)
    state = read_state(settings, settings.group_id, timeout=30.0)
    table = rows(settings, schedules, state)
    if json_out:
        for row in table:
            print(json.dumps(row))
        return 0
    cols = ("name", "expression", "next_due", "last_fired", "leader", "epoch")
    widths = {c: max(len(c), *(len(str(r[c])) for r in table)) for c in cols}
    print("  ".join(c.upper().replace("_", " ").ljust(widths[c]) for c in cols))
    for row in table:
        print("  ".join(str(row[c]).ljust(widths[c]) for c in cols))
    return 0


def run_now(args: argparse.Namespace) -> int:
    quiet_logging()
    name, timeout = args.name, args.timeout
    del args.name, args.timeout
    settings = settings_from(args)
    found = {s.name: s for s in _schedules(settings)}
    schedule = found.get(name)
    if schedule is None:
        raise ConfigError(f"no schedule named {name!r} (known: {', '.join(sorted(found))})")
    print(asyncio.run(_fire(settings, schedule, timeout)))
    return 0


async def _fire(settings: Settings, schedule: Schedule, wait: float) -> str:
    now = int(time.time() * 1000)
    payload = await schedule.build_payload(now)
    extra = dict(schedule.headers)
    extra.update({SCHEDULE_HEADER: schedule.name, SCHEDULE_DUE_HEADER: str(now)})
    async with TaskClient(settings, handlers=settings.handlers, timeout=wait) as client:
        task_id = f"{schedule.name}@manual-{now}"
        await client.submit(
            schedule.topic, payload, key=schedule.key, task_id=task_id, headers=extra
        )
    print(f"ktf schedules run: sent {task_id} to {schedule.topic}", file=sys.stderr)
    return task_id
