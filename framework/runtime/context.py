"""What a handler sees of its task besides the payload."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog

from framework.observability.tracing import TraceContext

SubmitFn = Callable[..., Awaitable[str]]


class TaskContext:
    """Task id, attempt, deadline, headers, a logger and a way to submit sub-tasks.

    Built once per record; the logger and trace context are created lazily because
    most handlers never touch them.
    """

    __slots__ = (
        "_headers",
        "_log",
        "_submit",
        "_trace",
        "attempt",
        "deadline_ms",
        "key",
        "offset",
        "partition",
        "task_id",
        "timestamp_ms",
        "topic",
    )

    def __init__(
        self,
        *,
        task_id: str,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        attempt: int,
        deadline_ms: int | None,
        headers: Mapping[str, str],
        timestamp_ms: int,
        submit: SubmitFn | None = None,
        trace: TraceContext | None = None,
    ) -> None:
        self.task_id = task_id
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.attempt = attempt
        self.deadline_ms = deadline_ms
        self.timestamp_ms = timestamp_ms
        self._headers = headers
        self._submit = submit
        self._trace = trace
        self._log: Any = None

    @property
    def headers(self) -> Mapping[str, str]:
        """The task's headers, decoded as UTF-8."""
        return self._headers

    @property
    def trace(self) -> TraceContext:
        """This task's span: the incoming trace continued, or a new trace."""
        if self._trace is None:
            self._trace = TraceContext.from_headers(self._headers).child()
        return self._trace

    @property
    def log(self) -> Any:
        """A structlog logger bound to the task's id, topic, partition, offset and attempt."""
        if self._log is None:
            self._log = structlog.get_logger("ktf.task").bind(
                task_id=self.task_id,
                topic=self.topic,
                partition=self.partition,
                offset=self.offset,
                attempt=self.attempt,
                trace_id=self.trace.trace_id,
            )
        return self._log

    def remaining(self) -> float | None:
        """Seconds left before the deadline, or None without one."""
        if self.deadline_ms is None:
            return None
        return self.deadline_ms / 1000.0 - time.time()

    async def submit(
        self,
        topic: str,
        payload: Mapping[str, Any],
        *,
        key: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> str:
        """Submit a sub-task (trace context carried along); returns its task id."""
        if self._submit is None:
            raise RuntimeError("this worker was started without a sub-task submitter")
        merged = dict(self.trace.child().to_headers())
        merged.update(headers or {})
        return await self._submit(topic, payload, key=key, headers=merged)
