"""Operations commands: ``ktf lag``, ``ktf groups [describe G]`` and ``ktf top``.

``lag`` and ``groups`` ask the broker (committed offsets, end offsets, group
membership); ``top`` combines the group's lag with scrapes of the workers'
``/metrics`` into a view refreshed every second. Every broker call is bounded by
``--timeout``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

from prometheus_client.parser import text_string_to_metric_families

from framework.commands._common import add_connection_args, settings_from
from framework.errors import FrameworkError, KafkaError
from framework.kafka.admin_ops import GroupOps, LagReport, LagRow
from framework.routing.tiers import split_retry_tier

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

    top = subparsers.add_parser(
        "top",
        help="live view of a group's workers: rate, in-flight, buffered, paused, lag, errors",
        description="Scrape the workers' /metrics (and the group's lag from the broker) "
        "every --interval seconds. On a terminal the view is redrawn; otherwise one "
        "plain line is printed per refresh.",
    )
    top.add_argument("--group", help="consumer group id (lag from the broker)")
    top.add_argument(
        "--metrics-url",
        dest="metrics_urls",
        action="append",
        default=[],
        metavar="URL",
        help="a worker's metrics endpoint, repeatable (e.g. http://worker-0:9100/metrics)",
    )
    top.add_argument("--interval", type=float, default=1.0, help="seconds between refreshes")
    top.add_argument("--iterations", type=int, default=0, help="stop after N refreshes (0: run)")
    _add_timeout(top)
    add_connection_args(top)
    top.set_defaults(func=run_top)


# -- lag ----------------------------------------------------------------------


def row_kind(row: LagRow) -> tuple[str, str | None]:
    """``("task", None)`` or ``("retry", tier)``: whether a row is runnable lag."""
    tier = split_retry_tier(row.topic)
    return ("retry", tier[1]) if tier is not None else ("task", None)


@dataclass(frozen=True)
class LagTotals:
    """A lag report split into runnable lag and retry backlog (per tier)."""

    runnable: int
    retry_backlog: int
    by_tier: dict[str, int]


def lag_totals(report: LagReport) -> LagTotals:
    runnable = backlog = 0
    by_tier: dict[str, int] = {}
    for r in report.rows:
        kind, tier = row_kind(r)
        if kind == "retry" and tier is not None:
            backlog += r.lag
            by_tier[tier] = by_tier.get(tier, 0) + r.lag
        else:
            runnable += r.lag
    return LagTotals(runnable, backlog, dict(sorted(by_tier.items())))


def lag_to_dict(report: LagReport) -> dict[str, Any]:
    """The JSON shape of ``ktf lag --json``.

    ``total_lag`` (= ``runnable_lag``) counts task topics only; retry tiers are in
    ``retry_backlog`` and ``retry_backlog_by_tier``.
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
        label = f"retry {tier}" if kind == "retry" else "task"
        rows.append((r.topic, str(r.partition), label, committed, str(r.end), str(r.lag), note))
    _print_table(rows)
    totals = lag_totals(report)
    print(f"TOTAL lag of group {report.group!r}: {totals.runnable} (runnable: task topics)")
    tiers = ", ".join(f"{t}: {n}" for t, n in totals.by_tier.items())
    print(
        f"RETRY backlog of group {report.group!r}: {totals.retry_backlog}"
        + (f" ({tiers}; runs when due, not counted as lag)" if tiers else "")
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


# -- top ----------------------------------------------------------------------

#: Outcomes that do not count as errors in ``ktf top``'s error rate.
_NON_ERROR_OUTCOMES = frozenset({"ok", "cancelled", "expired"})


@dataclass
class Snapshot:
    """Aggregated worker metrics at one instant (summed over all scraped workers)."""

    at: float
    tasks: dict[tuple[str, str], float] = field(default_factory=dict)  # (handler, outcome)
    in_flight: dict[str, float] = field(default_factory=dict)
    buffered: float = 0.0
    paused: float = 0.0
    consumer_lag: float = 0.0
    up: int = 0
    down: list[str] = field(default_factory=list)


def parse_metrics(text: str, snap: Snapshot) -> None:
    """Add one worker's Prometheus text exposition to ``snap``."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "ktf_tasks_total":
                key = (s.labels.get("handler", ""), s.labels.get("outcome", ""))
                snap.tasks[key] = snap.tasks.get(key, 0.0) + s.value
            elif s.name == "ktf_tasks_in_flight":
                h = s.labels.get("handler", "")
                snap.in_flight[h] = snap.in_flight.get(h, 0.0) + s.value
            elif s.name == "ktf_buffered_records":
                snap.buffered += s.value
            elif s.name == "ktf_paused_partitions":
                snap.paused += s.value
            elif s.name == "ktf_consumer_lag":
                snap.consumer_lag += s.value


def scrape(urls: list[str], timeout: float) -> Snapshot:
    """Scrape every URL; unreachable workers are listed in ``down``, not fatal."""
    snap = Snapshot(at=time.monotonic())
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                text = resp.read().decode("utf-8", "replace")
            parse_metrics(text, snap)
            snap.up += 1
        except (OSError, ValueError) as exc:  # URLError is an OSError
            snap.down.append(f"{url} ({getattr(exc, 'reason', exc)})")
    return snap


@dataclass
class HandlerRow:
    handler: str
    rate: float | None
    error_rate: float | None
    in_flight: float
    total: float


def handler_rows(prev: Snapshot | None, cur: Snapshot) -> list[HandlerRow]:
    """Per-handler rates between two snapshots (None on the first refresh)."""
    handlers = sorted({h for h, _ in cur.tasks} | set(cur.in_flight))
    dt = cur.at - prev.at if prev is not None else 0.0
    rows = []
    for h in handlers:
        total = sum(v for (hh, _), v in cur.tasks.items() if hh == h)
        errors = sum(
            v for (hh, o), v in cur.tasks.items() if hh == h and o not in _NON_ERROR_OUTCOMES
        )
        rate = err = None
        if prev is not None and dt > 0:
            p_total = sum(v for (hh, _), v in prev.tasks.items() if hh == h)
            p_err = sum(
                v for (hh, o), v in prev.tasks.items() if hh == h and o not in _NON_ERROR_OUTCOMES
            )
            # A restarted worker resets its counters; never show a negative rate.
            rate = max(total - p_total, 0.0) / dt
            err = max(errors - p_err, 0.0) / dt
        rows.append(HandlerRow(h, rate, err, cur.in_flight.get(h, 0.0), total))
    return rows


def _fmt_rate(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}/s"


def render_line(rows: list[HandlerRow], snap: Snapshot, lag: str) -> str:
    """One plain line per refresh (stdout is not a terminal)."""
    rate = None if any(r.rate is None for r in rows) else sum(r.rate or 0 for r in rows)
    err = None if any(r.error_rate is None for r in rows) else sum(r.error_rate or 0 for r in rows)
    parts = [
        time.strftime("%H:%M:%S"),
        f"rate={_fmt_rate(rate if rows else 0.0)}",
        f"errors={_fmt_rate(err if rows else 0.0)}",
        f"in_flight={sum(r.in_flight for r in rows):g}",
        f"buffered={snap.buffered:g}",
        f"paused={snap.paused:g}",
        f"lag={lag}",
        f"workers={snap.up}/{snap.up + len(snap.down)}",
    ]
    parts += [
        f"[{r.handler} rate={_fmt_rate(r.rate)} errors={_fmt_rate(r.error_rate)} "
        f"in_flight={r.in_flight:g}]"
        for r in rows
    ]
    return " ".join(parts)


def render_screen(rows: list[HandlerRow], snap: Snapshot, lag: str, title: str) -> str:
    """The full-screen view (stdout is a terminal)."""
    lines = [
        f"ktf top  {title}  {time.strftime('%H:%M:%S')}",
        f"workers {snap.up} up, {len(snap.down)} down   buffered {snap.buffered:g}   "
        f"paused partitions {snap.paused:g}   lag {lag}",
        "",
        f"{'HANDLER':<30} {'RATE':>10} {'ERRORS':>10} {'IN-FLIGHT':>10} {'TOTAL':>12}",
    ]
    for r in rows:
        lines.append(
            f"{r.handler[:30]:<30} {_fmt_rate(r.rate):>10} {_fmt_rate(r.error_rate):>10} "
            f"{r.in_flight:>10g} {r.total:>12g}"
        )
    if not rows:
        lines.append("(no tasks yet)")
    for d in snap.down:
        lines.append(f"DOWN: {d}")
    return "\n".join(lines)


def run_top(args: argparse.Namespace) -> int:
    """``ktf top``: live view from /metrics scrapes and the group's lag."""
    if not args.group and not args.metrics_urls:
        raise FrameworkError("ktf top needs --group G and/or --metrics-url URL")
    if args.interval <= 0:
        raise FrameworkError(f"--interval must be > 0 seconds, got {args.interval:g}")
    ops = _ops(args) if args.group else None
    if ops is not None:
        ops.lag(args.group)  # fail fast, with one clear line, on an unknown group
    if not args.metrics_urls:
        print(
            "ktf top: without --metrics-url only the group's lag is known; rates, in-flight "
            "and errors come from the workers' /metrics (e.g. --metrics-url "
            "http://worker-0:9100/metrics)",
            file=sys.stderr,
        )
    tty = sys.stdout.isatty()
    title = " ".join(
        x for x in (f"group {args.group}" if args.group else "", *args.metrics_urls) if x
    )
    prev: Snapshot | None = None
    n = 0
    while True:
        started = time.monotonic()
        snap = scrape(args.metrics_urls, args.timeout)
        lag = "-"
        if ops is not None:
            try:
                lag = str(ops.lag(args.group).total)
            except KafkaError as exc:
                lag = f"unavailable ({exc})"
        elif args.metrics_urls:
            lag = f"{snap.consumer_lag:g} (librdkafka)"
        rows = handler_rows(prev, snap)
        if tty:
            sys.stdout.write(_CLEAR + render_screen(rows, snap, lag, title) + "\n")
        else:
            sys.stdout.write(render_line(rows, snap, lag) + "\n")
        sys.stdout.flush()
        prev = snap
        n += 1
        if args.iterations and n >= args.iterations:
            return 0
        time.sleep(max(args.interval - (time.monotonic() - started), 0.0))
