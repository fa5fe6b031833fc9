"""The scheduler's Prometheus metrics, registered in the worker's registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

MISSED_CATCH_UP = "catch_up"
MISSED_MAX_INSTANCES = "max_instances"
MISSED_PAYLOAD = "payload_error"


class SchedulerMetrics:
    def __init__(self, registry: CollectorRegistry | None, group: str) -> None:
        r = registry if registry is not None else CollectorRegistry()
        self.leader = Gauge(
            "ktf_leader",
            "1 while this worker is its group's scheduler leader, else 0.",
            ("group",),
            registry=r,
        ).labels(group)
        self.epoch = Gauge(
            "ktf_leader_epoch",
            "The leader epoch this worker holds (0 when it does not lead).",
            ("group",),
            registry=r,
        ).labels(group)
        self.fired = Counter(
            "ktf_schedule_fired_total",
            "Windows whose task this worker produced (committed) as leader, by schedule.",
            ("schedule",),
            registry=r,
        )
        self.missed = Counter(
            "ktf_schedule_missed_total",
            "Windows not fired, by schedule and reason (catch_up, max_instances, payload_error).",
            ("schedule", "reason"),
            registry=r,
        )
        self.lag = Gauge(
            "ktf_schedule_lag_seconds",
            "On the leader: how late the last fired window was, or how long the oldest "
            "unfired due window has been waiting.",
            ("schedule",),
            registry=r,
        )
        self.leader.set(0)
        self.epoch.set(0)
