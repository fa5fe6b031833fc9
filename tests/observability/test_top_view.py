"""`ktf top` arithmetic and rendering, without a broker."""

from __future__ import annotations

import math

from prometheus_client.exposition import generate_latest

from framework.commands.top import (
    Target,
    handler_rows,
    render_line,
    render_workers,
    targets,
    worker_row,
)
from framework.kafka.admin_ops import MemberInfo
from framework.observability.announce import Announcement, decode_announcement
from framework.observability.discovery import (
    Discovered,
    WorkerSample,
    parse_worker_metrics,
    quantile,
)
from framework.observability.metrics import WorkerMetrics


def sample(at: float, w: WorkerMetrics) -> WorkerSample:
    return parse_worker_metrics(generate_latest(w.registry).decode(), at)


def ann(worker_id: str, **kw: object) -> Announcement:
    base: dict[str, object] = {
        "group": "g",
        "worker_id": worker_id,
        "host": "10.0.0.1",
        "pid": 1,
        "client_id": "ktf",
        "instance_id": None,
        "member_id": None,
        "metrics_url": f"http://10.0.0.1:9100/metrics#{worker_id}",
        "topics": ("t",),
        "started_at_ms": 0,
        "announced_at_ms": 1_000,
        "ttl_ms": 35_000,
    }
    return Announcement(**(base | kw))  # type: ignore[arg-type]


def test_rate_errors_and_latency_come_from_deltas_between_scrapes() -> None:
    w = WorkerMetrics()
    w.task_finished("resize", "t", "ok", 0.001, None)
    first = sample(100.0, w)
    for _ in range(30):
        w.task_finished("resize", "t", "ok", 0.02, None)  # bucket 0.01..0.025
    for _ in range(10):
        w.task_finished("resize", "t", "error", 0.2, None)  # bucket 0.1..0.25
    w.in_flight("resize", 4)
    w.set_paused(2)
    w.set_assigned_partitions(6)
    second = sample(102.0, w)
    row = worker_row(Target("w1", "http://x/metrics"), True, second, first)
    assert row.status == "up" and row.member is True
    assert row.rate == 40 / 2
    assert row.errors == 10 / 2
    assert (row.in_flight, row.paused, row.assigned_partitions) == (4, 2, 6)
    assert row.latency_over == "window"
    # p50 of the window: the 20th of 40 observations, inside the 10-25 ms bucket.
    assert row.p50_ms is not None and 10.0 < row.p50_ms <= 25.0
    # p99: inside the 100-250 ms bucket; the 1 ms task before the window is not counted.
    assert row.p99_ms is not None and 100.0 < row.p99_ms <= 250.0
    assert row.executor_saturation is None  # not reported by any executor yet
    (h,) = handler_rows({"w1": second}, {"w1": first})
    assert (h.handler, h.rate, h.errors, h.total) == ("resize", 20.0, 5.0, 41.0)


def test_first_refresh_has_no_rate_and_a_restart_never_goes_negative() -> None:
    w = WorkerMetrics()
    for _ in range(5):
        w.task_finished("h", "t", "ok", 0.01, None)
    before = sample(1.0, w)
    row = worker_row(Target("w", "u"), None, before, None)
    assert row.rate is None and row.latency_over == "lifetime"
    after = sample(2.0, WorkerMetrics())  # the worker restarted: counters reset
    row = worker_row(Target("w", "u"), None, after, before)
    assert row.rate == 0.0 and row.errors == 0.0


def test_quantile_interpolates_like_histogram_quantile() -> None:
    buckets = {0.1: 50.0, 0.2: 100.0, math.inf: 100.0}
    assert quantile(0.5, buckets, None) == 0.1
    assert quantile(0.75, buckets, None) == 0.15000000000000002
    assert quantile(0.5, buckets, buckets) is None  # nothing in the window
    assert quantile(0.99, {0.1: 0.0, math.inf: 4.0}, None) == 0.1  # +Inf: top bound


def test_unreachable_and_silent_workers_are_rows_not_failures() -> None:
    discovered = Discovered(
        live=(ann("a", member_id="m-a"), ann("b", instance_id="pod-b"), ann("c")),
        expired=(ann("old"),),
    )
    members = [
        MemberInfo("m-a", "ktf-consumer", "10.0.0.1", None, (("t", 0),)),
        MemberInfo("m-b", "ktf-consumer", "10.0.0.2", "pod-b", (("t", 1),)),
        MemberInfo("m-x", "legacy-consumer", "10.0.0.9", None, (("t", 2),)),
    ]
    found, membership = targets(discovered, members, ["http://extra:9100/metrics"])
    ids = [t.worker_id for t in found]
    assert ids == ["a", "b", "c", "http://extra:9100/metrics", "legacy-consumer@10.0.0.9"]
    assert membership == {
        "a": True,
        "b": True,
        "c": False,  # announced, but the broker does not list it: fenced or gone
        "http://extra:9100/metrics": None,
        "legacy-consumer@10.0.0.9": True,
    }
    rows = [
        worker_row(found[0], True, sample(1.0, WorkerMetrics()), None),
        worker_row(found[1], True, ConnectionRefusedError(111, "Connection refused"), None),
        worker_row(found[4], True, None, None),
    ]
    assert [r.status for r in rows] == ["up", "unreachable", "not announced"]
    assert rows[1].error == "[Errno 111] Connection refused"
    plain = render_line(rows, "7")
    assert "workers=1/3" in plain and "lag=7" in plain
    assert "[b unreachable: [Errno 111] Connection refused]" in plain
    screen = render_workers(rows, [], "ktf top group g", [], colour=False)
    assert "\x1b[" not in screen
    assert "b: unreachable: [Errno 111] Connection refused" in screen
    assert "EXEC-SAT" in screen and "n/a" in screen
    coloured = render_workers(rows, [], "ktf top group g", [], colour=True)
    assert "\x1b[31munreachable" in coloured and "\x1b[32mup" in coloured


def test_expired_announcements_are_told_from_live_ones() -> None:
    a = ann("a", announced_at_ms=100_000, ttl_ms=35_000)
    assert not a.expired(130_000)
    assert a.expired(135_001)
    assert decode_announcement(a.encode()) == a
    assert decode_announcement(b"not json") is None
    assert decode_announcement(b'{"group": "g"}') is None
