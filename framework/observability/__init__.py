"""Observability: Prometheus metrics, health endpoints, structured logs, trace context.

Import from the submodules (``framework.observability.metrics`` etc.); the names
below are re-exported for convenience.
"""

from __future__ import annotations

from framework.observability.health import HealthServer, HealthState
from framework.observability.logging import (
    bind_task_context,
    clear_task_context,
    configure_logging,
    get_logger,
)
from framework.observability.metrics import WorkerMetrics
from framework.observability.tracing import TraceContext, task_span

__all__ = [
    "HealthServer",
    "HealthState",
    "TraceContext",
    "WorkerMetrics",
    "bind_task_context",
    "clear_task_context",
    "configure_logging",
    "get_logger",
    "task_span",
]
