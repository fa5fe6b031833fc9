"""Operations commands: ``ktf lag``, ``ktf groups [describe G]`` (and ``ktf top``).

``lag`` and ``groups`` ask the broker (committed offsets, end offsets, group
membership); ``top`` (:mod:`framework.commands.top`) finds the group's workers and
scrapes their ``/metrics``. Every broker call is bounded by ``--timeout``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, TextIO

from framework.commands._common import add_connection_args, settings_from
from framework.errors import FrameworkError
from framework.kafka.admin_ops import GroupOps, LagReport, LagRow
from framework.kafka.preflight import check_connection
from framework.routing.tiers import split_waiting_tier

_CLEAR = "\x1b[H\x1b[2J"


def _add_timeout(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="bound on each broker request (default 10)",
    )


def _ops(args: argparse.Namespace) -> GroupOps:
    if args.timeout <= 0:
        raise FrameworkError(f"--timeout must be > 0 seconds, got {args.timeout:g}")
    settings = settings_from(_connection_only(args))
    check_connection(settings, timeout=args.timeout)
    return GroupOps(settings, timeout=args.timeout)


def _connection_only(args: argparse.Namespace) -> argparse.Namespace:
    # Settings.load ignores unknown keys, but a flag such as --group must not be
    # mistaken for the worker's group_id: keep only connection flags.
    keep = ("bootstrap_servers", "config_file", "kafka_opts")
    return argparse.Namespace(**{k: getattr(args, k, None) for k in keep})


def register(subparsers: Any) -> None:
    """Add ``lag``, ``groups`` and ``top`` to the ``ktf`` parser."""
    lag = subparsers.add_parser(
        "lag",
        help="per-partition committed offset, end offset and lag of a consumer group",
        description="Show a consumer group's committed offset, end offset and lag for "
        "every partition of its topics. Task topics add up to the runnable lag (work "
        "more workers could take); retry tiers (<topic>.retry.<delay>) add up to the "
        "retry backlog, reported apart because those records run at their not-before "
        "time, not when capacity grows. A partition with no committed offset counts its "
        "whole retained log (end - start).",
    )
    lag.add_argument("--group", required=True, help="consumer group id")
    lag.add_argument("--topic", help="only this topic (all its partitions)")
    lag.add_argument("--json", action="store_true", help="machine-readable output")
    _add_timeout(lag)
    add_connection_args(lag)
    lag.set_defaults(func=run_lag)

    groups = subparsers.add_parser(
        "groups",
        help="list consumer groups, or describe one",
        description="List consumer groups (state, type, protocol, members), or "
        "`ktf groups describe G` for members, client ids, hosts and assignments.",
    )
    gsub = groups.add_subparsers(dest="groups_command", metavar="describe")
    describe = gsub.add_parser("describe", help="members, hosts and assignments of a group")
    describe.add_argument("group", help="consumer group id")
    describe.add_argument("--json", action="store_true", help="machine-readable output")
    _add_timeout(describe)
    add_connection_args(describe)
    describe.set_defaults(func=run_describe)
    # Flags may sit before or after `describe`; the sub-parser must not reset the
    # ones given before it to their defaults.
    for action in describe._actions:
        if action.dest not in ("help", "group"):
            action.default = argparse.SUPPRESS
    groups.add_argument("--json", action="store_true", help="machine-readable output")
    _add_timeout(groups)
    add_connection_args(groups)
    groups.set_defaults(func=run_groups)

    from framework.commands import top

    top.register(subparsers, _add_timeout, add_connection_args)


# -- lag ----------------------------------------------------------------------


def row_kind(row: LagRow) -> tuple[str, str | None]:
    """``("task", None)``, ``("retry", tier)`` or ``("delay", tier)``: runnable or not."""
    tier = split_waiting_tier(row.topic)
    return (tier[1], tier[2]) if tier is not None else ("task", None)


@dataclass(frozen=True)
class LagTotals:
    """A lag report split into runnable lag, retry backlog and delay backlog (per tier)."""

    runnable: int
    retry_backlog: int
    by_tier: dict[str, int]
    delay_backlog: int = 0
    delay_by_tier: dict[str, int] | None = None


def lag_totals(report: LagReport) -> LagTotals:
    runnable = backlog = delayed = 0
    by_tier: dict[str, int] = {}
    delay_by_tier: dict[str, int] = {}
    for r in report.rows:
        kind, tier = row_kind(r)
        if kind == "retry" and tier is not None:
            backlog += r.lag
            by_tier[tier] = by_tier.get(tier, 0) + r.lag
        elif kind == "delay" and tier is not None:
            delayed += r.lag
            delay_by_tier[tier] = delay_by_tier.get(tier, 0) + r.lag
        else:
            runnable += r.lag
    return LagTotals(
        runnable,
        backlog,
        dict(sorted(by_tier.items())),
        delayed,
        dict(sorted(delay_by_tier.items())),
    )


def lag_to_dict(report: LagReport) -> dict[str, Any]:
    """The JSON shape of ``ktf lag --json``.

    ``total_lag`` (= ``runnable_lag``) counts task topics only; retry tiers are in
    ``retry_backlog`` and ``retry_backlog_by_tier``, delay tiers of delayed tasks in
    ``delay_backlog`` and ``delay_backlog_by_tier``.
    """
    totals = lag_totals(report)
    partitions = []
    for r in report.rows:
        kind, tier = row_kind(r)
        partitions.append({**asdict(r), "kind": kind, "tier": tier})
    return {
        "group": report.group,
        "partitions": partitions,
        "total_lag": totals.runnable,
        "runnable_lag": totals.runnable,
        "retry_backlog": totals.retry_backlog,
        "retry_backlog_by_tier": totals.by_tier,
        "delay_backlog": totals.delay_backlog,
        "delay_backlog_by_tier": totals.delay_by_tier or {},
    }


def run_lag(args: argparse.Namespace) -> int:
    """``ktf lag``: exact per-partition lag from the broker."""
    report = _ops(args).lag(args.group, args.topic)
    if args.json:
        print(json.dumps(lag_to_dict(report), indent=2))
        return 0
    rows = [("TOPIC", "PARTITION", "KIND", "COMMITTED", "END", "LAG", "NOTE")]
    for r in report.rows:
        committed = "-" if r.committed is None else str(r.committed)
        note = r.note
        if r.committed is None:
            note = f"no committed offset: lag = end - start ({r.end} - {r.start})"
        kind, tier = row_kind(r)
        label = "task" if tier is None else f"{kind} {tier}"
        rows.append((r.topic, str(r.partition), label, committed, str(r.end), str(r.lag), note))
    _print_table(rows)
    totals = lag_totals(report)
    print(f"TOTAL lag of group {report.group!r}: {totals.runnable} (runnable: task topics)")
    tiers = ", ".join(f"{t}: {n}" for t, n in totals.by_tier.items())
    print(
        f"RETRY backlog of group {report.group!r}: {totals.retry_backlog}"
        + (f" ({tiers}; runs when due, not counted as lag)" if tiers else "")
    )
    if totals.delay_backlog:
        delays = ", ".join(f"{t}: {n}" for t, n in (totals.delay_by_tier or {}).items())
        print(
            f"DELAY backlog of group {report.group!r}: {totals.delay_backlog} "
            f"({delays}; delayed tasks not yet due, not counted as lag)"
        )
    return 0


# -- groups -------------------------------------------------------------------


def run_groups(args: argparse.Namespace) -> int:
    """``ktf groups``: every consumer group with state, type, protocol and members."""
    groups = _ops(args).list_groups()
    if args.json:
        print(json.dumps([asdict(g) for g in groups], indent=2))
        return 0
    if not groups:
        print("no consumer groups")
        return 0
    rows = [("GROUP", "STATE", "TYPE", "PROTOCOL", "MEMBERS")]
    rows += [(g.group_id, g.state, g.type, g.protocol or "-", str(g.members)) for g in groups]
    _print_table(rows)
    return 0


def run_describe(args: argparse.Namespace) -> int:
    """``ktf groups describe G``: members, client ids, hosts and assignments."""
    desc = _ops(args).describe_group(args.group)
    if args.json:
        print(json.dumps(asdict(desc), indent=2))
        return 0
    print(
        f"group {desc.group_id}: state {desc.state}, type {desc.type}, "
        f"protocol {desc.protocol or '-'}, coordinator {desc.coordinator or '-'}, "
        f"{len(desc.members)} member(s)"
    )
    if not desc.members:
        return 0
    rows = [("CLIENT-ID", "HOST", "INSTANCE-ID", "ASSIGNMENT", "MEMBER-ID")]
    for m in desc.members:
        rows.append(
            (
                m.client_id,
                m.host,
                m.group_instance_id or "-",
                _format_assignment(m.assignment) or "-",
                m.member_id,
            )
        )
    _print_table(rows)
    return 0


def _format_assignment(tps: tuple[tuple[str, int], ...]) -> str:
    by_topic: dict[str, list[int]] = defaultdict(list)
    for topic, partition in tps:
        by_topic[topic].append(partition)
    return " ".join(f"{t}[{','.join(map(str, sorted(ps)))}]" for t, ps in sorted(by_topic.items()))


def _print_table(rows: Sequence[Sequence[str]], out: TextIO | None = None) -> None:
    out = out or sys.stdout
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        line = "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True))
        print(line.rstrip(), file=out)
