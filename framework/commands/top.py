"""``ktf top``: a live view of a group's workers, found through ``ktf.workers``.

Each refresh: read the group's announcements (workers announce their identity and
``/metrics`` URL, see :mod:`framework.observability.announce`), ask the broker for
the group's members and lag, scrape every announced endpoint (and any
``--metrics-url``) in parallel, and show one row per worker: rate, errors, in
flight, paused, partitions, lag, retry backlog, p50/p99 handler duration, event
loop lag and executor saturation. Unreachable workers and members that never
announced are rows with a status, never a failure. ``--once`` samples twice
(``--interval`` apart, so rates exist) and prints once; ``--json`` for scripts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from framework.errors import FrameworkError, KafkaError
from framework.kafka.admin_ops import GroupOps, MemberInfo
from framework.observability.announce import Announcement
from framework.observability.discovery import (
    Discovered,
    WorkerSample,
    describe_error,
    quantile,
    read_announcements,
    sample_worker,
)

_CLEAR = "\x1b[H\x1b[2J"
_COLOURS = {"red": "31", "green": "32", "yellow": "33", "dim": "2", "bold": "1"}


def register(subparsers: Any, add_timeout: Any, add_connection_args: Any) -> None:
    top = subparsers.add_parser(
        "top",
        help="live view of a group's workers: rate, in flight, paused, lag, latency, errors",
        description="Find the group's live workers on ktf.workers (each worker announces "
        "its identity and /metrics endpoint), scrape them every --interval seconds and "
        "show one row per worker, with the group's lag from the broker. Unreachable "
        "workers and members that never announced are shown with a status. On a terminal "
        "the view is redrawn in colour; otherwise one plain line is printed per refresh.",
    )
    top.add_argument("--group", help="consumer group id: discover its workers, read its lag")
    top.add_argument(
        "--metrics-url",
        dest="metrics_urls",
        action="append",
        default=[],
        metavar="URL",
        help="also scrape this endpoint, repeatable (workers that do not announce)",
    )
    top.add_argument("--interval", type=float, default=1.0, help="seconds between refreshes")
    top.add_argument("--iterations", type=int, default=0, help="stop after N refreshes (0: run)")
    top.add_argument(
        "--once",
        action="store_true",
        help="sample twice --interval apart, print one view and exit (rates need two samples)",
    )
    top.add_argument("--json", action="store_true", help="JSON (one document per refresh)")
    top.add_argument(
        "--no-color", action="store_true", help="no colours even on a terminal (also NO_COLOR)"
    )
    add_timeout(top)
    add_connection_args(top)
    top.set_defaults(func=run_top)


def _fmt_rate(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}/s"


# -- per-worker view --------------------------------------------------------------------


@dataclass
class Target:
    """A worker to show: announced, given by --metrics-url, or a silent group member."""

    worker_id: str
    url: str | None
    host: str = ""
    instance_id: str | None = None
    client_id: str | None = None
    member_id: str | None = None
    announced: bool = True


@dataclass
class WorkerRow:
    """One worker's line (and JSON object)."""

    worker: str
    host: str
    status: str  # up | unreachable | no endpoint | not announced
    error: str | None
    metrics_url: str | None
    member: bool | None
    instance_id: str | None
    client_id: str | None
    rate: float | None = None
    errors: float | None = None
    in_flight: float | None = None
    buffered: float | None = None
    paused: float | None = None
    assigned_partitions: float | None = None
    lag: float | None = None
    retry_backlog: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    latency_over: str | None = None  # "window" or "lifetime"
    loop_lag_ms: float | None = None
    #: not measured yet: the thread/process executors' busy share, once they report it
    executor_saturation: float | None = None


def targets(
    discovered: Discovered, members: Sequence[MemberInfo] | None, urls: Sequence[str]
) -> tuple[list[Target], dict[str, bool | None]]:
    """Rows to show and, per worker id, whether the broker lists it as a member."""
    out: list[Target] = []
    membership: dict[str, bool | None] = {}
    matched: set[str] = set()
    for ann in discovered.live:
        out.append(_target_of(ann))
        member: bool | None = None
        if members is not None:
            m = _match(ann, members)
            member = m is not None
            if m is not None:
                matched.add(m.member_id)
        membership[ann.worker_id] = member
    for url in urls:
        out.append(Target(worker_id=url, url=url, announced=False))
        membership[url] = None
    for m in members or ():
        if m.member_id in matched:
            continue
        wid = m.group_instance_id or f"{m.client_id}@{m.host}"
        out.append(
            Target(
                worker_id=wid,
                url=None,
                host=m.host,
                instance_id=m.group_instance_id,
                client_id=m.client_id,
                member_id=m.member_id,
                announced=False,
            )
        )
        membership[wid] = True
    return out, membership


def _target_of(ann: Announcement) -> Target:
    return Target(
        worker_id=ann.worker_id,
        url=ann.metrics_url,
        host=ann.host,
        instance_id=ann.instance_id,
        client_id=ann.client_id,
        member_id=ann.member_id,
    )


def _match(ann: Announcement, members: Sequence[MemberInfo]) -> MemberInfo | None:
    for m in members:
        if ann.member_id and m.member_id == ann.member_id:
            return m
    for m in members:
        if ann.instance_id and m.group_instance_id == ann.instance_id:
            return m
    return None


def scrape_all(
    found: Sequence[Target], timeout: float
) -> dict[str, WorkerSample | BaseException | None]:
    """Scrape every target with an endpoint, in parallel; failures are values."""

    def one(t: Target) -> WorkerSample | BaseException | None:
        if t.url is None:
            return None
        try:
            return sample_worker(t.url, timeout)
        except (OSError, ValueError) as exc:  # URLError is an OSError
            return exc

    if not found:
        return {}
    with ThreadPoolExecutor(max_workers=min(32, len(found))) as pool:
        results = list(pool.map(one, found))
    return {t.worker_id: r for t, r in zip(found, results, strict=True)}


def worker_row(
    t: Target,
    member: bool | None,
    cur: WorkerSample | BaseException | None,
    prev: WorkerSample | None,
) -> WorkerRow:
    row = WorkerRow(
        worker=t.worker_id,
        host=t.host,
        status="up",
        error=None,
        metrics_url=t.url,
        member=member,
        instance_id=t.instance_id,
        client_id=t.client_id,
    )
    if cur is None:
        row.status = "not announced" if not t.announced else "no endpoint"
        row.error = (
            "a group member that did not announce itself on ktf.workers"
            if not t.announced
            else "announced without a metrics endpoint (metrics_port 0)"
        )
        return row
    if isinstance(cur, BaseException):
        row.status = "unreachable"
        row.error = describe_error(cur)
        return row
    row.in_flight, row.buffered, row.paused = cur.in_flight, cur.buffered, cur.paused
    row.assigned_partitions, row.lag, row.retry_backlog = cur.assigned, cur.lag, cur.retry_backlog
    row.loop_lag_ms = None if cur.loop_lag is None else cur.loop_lag * 1000
    row.executor_saturation = cur.executor_saturation
    if prev is not None and cur.at > prev.at:
        dt = cur.at - prev.at
        # A restarted worker resets its counters; never show a negative rate.
        row.rate = max(cur.tasks - prev.tasks, 0.0) / dt
        row.errors = max(cur.errors - prev.errors, 0.0) / dt
        restarted = cur.tasks < prev.tasks
        window = None if restarted else prev.duration
        p50, p99 = quantile(0.5, cur.duration, window), quantile(0.99, cur.duration, window)
        if p50 is not None:
            row.p50_ms, row.p99_ms, row.latency_over = p50 * 1000, (p99 or 0) * 1000, "window"
    if row.p50_ms is None:
        p50, p99 = quantile(0.5, cur.duration, None), quantile(0.99, cur.duration, None)
        if p50 is not None:
            row.p50_ms, row.p99_ms, row.latency_over = p50 * 1000, (p99 or 0) * 1000, "lifetime"
    return row


@dataclass
class HandlerRow:
    """One handler's rates, summed over the workers that answered."""

    handler: str
    rate: float | None
    errors: float | None
    total: float


def handler_rows(cur: dict[str, WorkerSample], prev: dict[str, WorkerSample]) -> list[HandlerRow]:
    """Per-handler rates between two scrapes of the same workers (None on the first)."""
    totals: dict[str, list[float | None]] = {}
    for wid, s in cur.items():
        p = prev.get(wid)
        dt = s.at - p.at if p is not None else 0.0
        for h, (total, errors) in s.by_handler.items():
            acc = totals.setdefault(h, [0.0, 0.0, 0.0])
            acc[2] = (acc[2] or 0.0) + total
            if p is None or dt <= 0:
                acc[0] = acc[1] = None
                continue
            pt, pe = p.by_handler.get(h, (0.0, 0.0))
            if acc[0] is not None and acc[1] is not None:
                # A restarted worker resets its counters; never a negative rate.
                acc[0] += max(total - pt, 0.0) / dt
                acc[1] += max(errors - pe, 0.0) / dt
    return [HandlerRow(h, v[0], v[1], v[2] or 0.0) for h, v in sorted(totals.items())]


# -- rendering ----------------------------------------------------------------------------


def _paint(text: str, colour: str | None, on: bool) -> str:
    if not on or colour is None:
        return text
    return f"\x1b[{_COLOURS[colour]}m{text}\x1b[0m"


def _num(v: float | None, fmt: str = "{:g}") -> str:
    return "-" if v is None else fmt.format(v)


_COLUMNS = (
    ("WORKER", 24, "<"),
    ("HOST", 16, "<"),
    ("STATUS", 13, "<"),
    ("MEMBER", 6, "<"),
    ("RATE", 9, ">"),
    ("ERR/S", 7, ">"),
    ("INFLT", 6, ">"),
    ("PAUSED", 6, ">"),
    ("PARTS", 5, ">"),
    ("LAG", 8, ">"),
    ("RETRY", 7, ">"),
    ("P50ms", 8, ">"),
    ("P99ms", 8, ">"),
    ("LOOPms", 7, ">"),
    ("EXEC-SAT", 8, ">"),
)


def _cells(r: WorkerRow) -> list[tuple[str, str | None]]:
    status_colour = {"up": "green", "unreachable": "red"}.get(r.status, "yellow")
    member = {True: "yes", False: "NO", None: "?"}[r.member]
    return [
        (r.worker, "bold"),
        (r.host or "-", None),
        (r.status, status_colour),
        (member, "red" if r.member is False else None),
        (_num(r.rate, "{:.1f}"), None),
        (_num(r.errors, "{:.1f}"), "red" if r.errors else None),
        (_num(r.in_flight), None),
        (_num(r.paused), "yellow" if r.paused else None),
        (_num(r.assigned_partitions), "yellow" if r.assigned_partitions == 0 else None),
        (_num(r.lag), None),
        (_num(r.retry_backlog), None),
        (_num(r.p50_ms, "{:.1f}"), None),
        (_num(r.p99_ms, "{:.1f}"), None),
        (_num(r.loop_lag_ms, "{:.1f}"), "red" if (r.loop_lag_ms or 0) > 100 else None),
        (
            "n/a" if r.executor_saturation is None else f"{r.executor_saturation:.0%}",
            "dim" if r.executor_saturation is None else None,
        ),
    ]


def render_workers(
    rows: Sequence[WorkerRow],
    handlers: Sequence[HandlerRow],
    header: str,
    notes: Sequence[str],
    colour: bool,
) -> str:
    """The per-worker table and the per-handler rates (``--once`` and the terminal view)."""
    lines = [header, ""]
    lines.append(" ".join(f"{name:{align}{width}}" for name, width, align in _COLUMNS).rstrip())
    for r in rows:
        out = []
        for (text, c), (_, width, align) in zip(_cells(r), _COLUMNS, strict=True):
            cell = f"{text[:width]:{align}{width}}"
            out.append(_paint(cell, c, colour))
        lines.append(" ".join(out).rstrip())
    if not rows:
        lines.append("(no live workers found)")
    for r in rows:
        if r.error and r.status != "up":
            lines.append(_paint(f"{r.worker}: {r.status}: {r.error}", "yellow", colour))
    if handlers:
        lines += ["", f"{'HANDLER':<30} {'RATE':>10} {'ERRORS':>10} {'TOTAL':>12}"]
        for h in handlers:
            err = _paint(f"{_fmt_rate(h.errors):>10}", "red" if h.errors else None, colour)
            lines.append(f"{h.handler[:30]:<30} {_fmt_rate(h.rate):>10} {err} {h.total:>12g}")
    lines += list(notes)
    lines.append(
        "EXEC-SAT n/a: thread/process executors do not report saturation yet "
        "(ktf_executor_saturation); P50/P99: handler duration over the last interval"
    )
    return "\n".join(lines)


# -- the command --------------------------------------------------------------------------


@dataclass
class _Broker:
    ops: GroupOps | None
    group: str | None


def _group_state(broker: _Broker) -> tuple[list[MemberInfo] | None, dict[str, Any]]:
    members: list[MemberInfo] | None = None
    lag: dict[str, Any] = {"runnable": None, "retry_backlog": None, "error": None}
    if broker.ops is None or broker.group is None:
        return None, lag
    from framework.commands.ops import lag_totals

    try:
        members = list(broker.ops.describe_group(broker.group).members)
    except KafkaError as exc:
        if "does not exist" not in str(exc):
            lag["error"] = str(exc)
        members = [] if "does not exist" in str(exc) else None
    try:
        totals = lag_totals(broker.ops.lag(broker.group))
        lag["runnable"], lag["retry_backlog"] = totals.runnable, totals.retry_backlog
    except KafkaError as exc:
        lag["error"] = str(exc)
    return members, lag


def run_top(args: argparse.Namespace) -> int:
    """``ktf top``: see the module docstring."""
    from framework.commands._common import settings_from
    from framework.commands.ops import _connection_only, _ops

    if not args.group and not args.metrics_urls:
        raise FrameworkError("ktf top needs --group G (discovers its workers) or --metrics-url URL")
    if args.interval <= 0:
        raise FrameworkError(f"--interval must be > 0 seconds, got {args.interval:g}")
    ops = _ops(args) if args.group else None
    if ops is not None:
        ops.lag(args.group)  # fail fast, with one clear line, on an unknown group
    settings = settings_from(_connection_only(args)) if ops is not None else None
    broker = _Broker(ops, args.group)
    tty = sys.stdout.isatty()
    colour = tty and not args.no_color and not os.environ.get("NO_COLOR") and not args.json
    prev: dict[str, WorkerSample] = {}
    n = 0
    samples_needed = 2 if args.once else 1
    while True:
        started = time.monotonic()
        discovered = (
            read_announcements(settings, args.group, args.timeout)
            if settings is not None and args.group
            else Discovered()
        )
        members, lag = _group_state(broker)
        found, membership = targets(discovered, members, args.metrics_urls)
        results = scrape_all(found, args.timeout)
        rows = [
            worker_row(
                t,
                membership.get(t.worker_id),
                results.get(t.worker_id),
                prev.get(t.worker_id),
            )
            for t in found
        ]
        cur = {k: v for k, v in results.items() if isinstance(v, WorkerSample)}
        handlers = handler_rows(cur, prev)
        prev = cur
        n += 1
        if n >= samples_needed:
            _emit(args, rows, handlers, discovered, lag, tty, colour)
            if args.once or (args.iterations and n >= args.iterations):
                return 0
        time.sleep(max(args.interval - (time.monotonic() - started), 0.0))


def _emit(
    args: argparse.Namespace,
    rows: list[WorkerRow],
    handlers: list[HandlerRow],
    discovered: Discovered,
    lag: dict[str, Any],
    tty: bool,
    colour: bool,
) -> None:
    up = sum(1 for r in rows if r.status == "up")
    if args.json:
        doc = {
            "group": args.group,
            "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "interval_s": args.interval,
            "lag": lag,
            "discovery": {
                "topic": "ktf.workers",
                "live": len(discovered.live),
                "expired": [a.worker_id for a in discovered.expired],
                "error": discovered.error,
            },
            "workers": [asdict(r) for r in rows],
            "handlers": [asdict(h) for h in handlers],
            "totals": {
                "workers_up": up,
                "workers_total": len(rows),
                "rate": sum(r.rate or 0.0 for r in rows),
                "errors": sum(r.errors or 0.0 for r in rows),
                "in_flight": sum(r.in_flight or 0.0 for r in rows),
            },
        }
        print(json.dumps(doc), flush=True)
        return
    lag_text = _lag_text(lag, rows)
    if not tty and not args.once:
        sys.stdout.write(render_line(rows, lag_text) + "\n")
        sys.stdout.flush()
        return
    title = f"group {args.group}" if args.group else " ".join(args.metrics_urls)
    header = (
        f"ktf top  {title}  {time.strftime('%H:%M:%S')}   workers {up} up of {len(rows)}"
        f"{f', {len(discovered.expired)} expired' if discovered.expired else ''}   lag {lag_text}"
    )
    notes = [f"discovery: {discovered.error}"] if discovered.error else []
    screen = render_workers(rows, handlers, header, notes, colour)
    prefix = _CLEAR if tty and not args.once else ""
    sys.stdout.write(prefix + screen + "\n")
    sys.stdout.flush()


def _lag_text(lag: dict[str, Any], rows: Sequence[WorkerRow]) -> str:
    if lag.get("runnable") is not None:
        text = f"{lag['runnable']}"
        if lag.get("retry_backlog"):
            text += f" (+{lag['retry_backlog']} retry backlog)"
        return text
    if lag.get("error"):
        return f"unavailable ({lag['error']})"
    up = [r for r in rows if r.status == "up"]
    return f"{sum(r.lag or 0.0 for r in up):g} (librdkafka)" if up else "-"


def render_line(rows: Sequence[WorkerRow], lag: str) -> str:
    """One plain line per refresh (stdout is not a terminal): totals over the workers."""
    up = [r for r in rows if r.status == "up"]
    rate = None if any(r.rate is None for r in up) else sum(r.rate or 0.0 for r in up)
    errors = None if any(r.errors is None for r in up) else sum(r.errors or 0.0 for r in up)
    parts = [
        time.strftime("%H:%M:%S"),
        f"rate={_fmt_rate(rate)}",
        f"errors={_fmt_rate(errors)}",
        f"in_flight={sum(r.in_flight or 0.0 for r in up):g}",
        f"buffered={sum(r.buffered or 0.0 for r in up):g}",
        f"paused={sum(r.paused or 0.0 for r in up):g}",
        f"lag={lag}",
        f"workers={len(up)}/{len(rows)}",
    ]
    parts += [f"[{r.worker} {r.status}: {r.error}]" for r in rows if r.status != "up"]
    return " ".join(parts)
