"""Running one record: decode, check the deadline, call the handler, route the outcome.

This is the per-record hot path, so it avoids allocation it does not need: headers
are decoded once, the trace context and the handler's logger are created lazily.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from framework import headers as h
from framework.errors import (
    DecodeError,
    EncodeError,
    Reject,
    Retry,
    TaskCancelled,
    TaskExpired,
    TaskTimeout,
)
from framework.observability.metrics import WorkerMetrics
from framework.observability.tracing import TraceContext
from framework.registry import HandlerSpec
from framework.routing.router import Router, task_id_of
from framework.runtime.context import SubmitFn, TaskContext
from framework.runtime.state import Envelope
from framework.serde import Codec

log = structlog.get_logger("framework.runtime")

OUTCOME_OK = "ok"
OUTCOME_ERROR = "error"
OUTCOME_DEAD = "dead_lettered"
OUTCOME_RETRIED = "retried"
OUTCOME_EXPIRED = "expired"
OUTCOME_CANCELLED = "cancelled"
OUTCOME_TIMEOUT = "timeout"
OUTCOME_REJECTED = "rejected"


class HandlerCodecs:
    """A handler's task codec and, if it declares one, its result codec."""

    __slots__ = ("result", "task")

    def __init__(self, task: Codec, result: Codec | None) -> None:
        self.task = task
        self.result = result


class TaskRunner:
    """Executes envelopes for every handler of a worker."""

    def __init__(
        self,
        codecs: Mapping[str, HandlerCodecs],
        router: Router,
        metrics: WorkerMetrics,
        *,
        submit: SubmitFn | None = None,
        failure: Callable[[Envelope, BaseException, TraceContext, str], None] | None = None,
    ) -> None:
        self._codecs = codecs
        self._router = router
        self._metrics = metrics
        self._submit = submit
        self._failure = failure or self._dead_letter
        #: task id -> running asyncio task, for cancellation across nodes
        self.running: dict[str, asyncio.Task[Any]] = {}
        self.is_cancelled: Callable[[str], bool] = lambda _task_id: False

    async def run(self, env: Envelope) -> None:
        spec = env.spec
        state = env.state
        state.in_flight += 1
        env.started = True
        router = self._router
        router.begin(env)
        metrics = self._metrics
        metrics.in_flight(spec.name, 1)
        started = time.perf_counter()
        outcome = OUTCOME_OK
        try:
            outcome = await self._run(env, spec)
        finally:
            metrics.in_flight(spec.name, -1)
            now = time.perf_counter()
            e2e = time.time() - env.timestamp / 1000.0 if env.timestamp > 0 else None
            metrics.task_finished(spec.name, env.topic, outcome, now - started, e2e)
            router.end(env)

    async def _run(self, env: Envelope, spec: HandlerSpec) -> str:
        hdrs = h.to_dict(env.headers) if env.headers else {}  # type: ignore[arg-type]
        attempt_raw = hdrs.get(h.ATTEMPT)
        if attempt_raw is not None:
            try:
                env.attempt = max(1, int(attempt_raw))
            except ValueError:
                env.attempt = 1
        task_id = hdrs.get(h.TASK_ID) or task_id_of(env)
        deadline_ms: int | None = None
        raw_deadline = hdrs.get(h.DEADLINE)
        if raw_deadline:
            try:
                deadline_ms = int(raw_deadline)
            except ValueError:
                deadline_ms = None
        if deadline_ms is not None and time.time() * 1000 >= deadline_ms:
            trace = TraceContext.from_headers(hdrs).child()
            self._router.reply(
                env,
                status=h.STATUS_EXPIRED,
                value=None,
                trace=trace,
                error=TaskExpired(f"deadline {deadline_ms} passed before the task started"),
            )
            return OUTCOME_EXPIRED
        if self.is_cancelled(task_id):
            trace = TraceContext.from_headers(hdrs).child()
            self._router.reply(
                env,
                status=h.STATUS_CANCELLED,
                value=None,
                trace=trace,
                error=TaskCancelled(f"task {task_id} was cancelled before it started"),
            )
            return OUTCOME_CANCELLED

        codecs = self._codecs[spec.topic]
        value = env.value
        try:
            if value is None:
                raise DecodeError(f"record {env.where} has no value (tombstone)")
            task = codecs.task.decode(value)
        except DecodeError as exc:
            trace = TraceContext.from_headers(hdrs).child()
            self._dead_letter(env, _at(exc, env), trace, "DecodeError")
            return OUTCOME_DEAD

        ctx = TaskContext(
            task_id=task_id,
            topic=env.topic,
            partition=env.partition,
            offset=env.offset,
            key=env.key,
            attempt=env.attempt,
            deadline_ms=deadline_ms,
            headers=hdrs,
            timestamp_ms=env.timestamp,
            submit=self._submit,
        )
        timeout = spec.timeout
        if deadline_ms is not None:
            left = deadline_ms / 1000.0 - time.time()
            timeout = left if timeout is None else min(timeout, left)
        current = asyncio.current_task()
        assert current is not None
        self.running[task_id] = current
        try:
            if timeout is None:
                result = await spec.fn(task, ctx)
            else:
                async with asyncio.timeout(timeout):
                    result = await spec.fn(task, ctx)
        except TimeoutError:
            if deadline_ms is not None and time.time() * 1000 >= deadline_ms:
                err: BaseException = TaskExpired(
                    f"task {task_id} passed its deadline while running"
                )
                self._router.reply(
                    env, status=h.STATUS_EXPIRED, value=None, trace=ctx.trace, error=err
                )
                return OUTCOME_EXPIRED
            err = TaskTimeout(f"handler {spec.name} ran longer than its {spec.timeout}s timeout")
            self._failure(env, err, ctx.trace, "TaskTimeout")
            return OUTCOME_TIMEOUT
        except asyncio.CancelledError:
            task_obj = asyncio.current_task()
            if task_obj is not None and task_obj.cancelling() and self._cancel_requested(task_id):
                # Cancelled through the control topic: report it and keep the worker alive.
                task_obj.uncancel()
                err = TaskCancelled(f"task {task_id} was cancelled while running")
                self._router.reply(
                    env, status=h.STATUS_CANCELLED, value=None, trace=ctx.trace, error=err
                )
                return OUTCOME_CANCELLED
            raise
        except Reject as exc:
            self._dead_letter(env, exc, ctx.trace, "Reject")
            return OUTCOME_REJECTED
        except Exception as exc:
            self._failure(env, exc, ctx.trace, type(exc).__name__)
            return OUTCOME_RETRIED if isinstance(exc, Retry) else OUTCOME_ERROR
        finally:
            self.running.pop(task_id, None)

        try:
            payload = self._encode_result(spec, codecs, result)
        except EncodeError as exc:
            self._dead_letter(env, exc, ctx.trace, "EncodeError")
            return OUTCOME_ERROR
        self._router.reply(env, status=h.STATUS_OK, value=payload, trace=ctx.trace)
        return OUTCOME_OK

    def _cancel_requested(self, task_id: str) -> bool:
        return self.is_cancelled(task_id)

    @staticmethod
    def _encode_result(spec: HandlerSpec, codecs: HandlerCodecs, result: Any) -> bytes | None:
        if result is None:
            return None
        if codecs.result is None:
            raise EncodeError(
                f"handler {spec.name} returned a {type(result).__name__} but declares no "
                "result_schema"
            )
        return codecs.result.encode(result)

    def _dead_letter(
        self, env: Envelope, exc: BaseException, trace: TraceContext, error_type: str
    ) -> None:
        """Final failure: the record to the DLQ and, if a reply is expected, an error reply."""
        self._router.dead_letter(env, exc, error_type=error_type, trace=trace)
        self._router.reply(
            env, status=h.STATUS_ERROR, value=None, trace=trace, error=exc, error_type=error_type
        )
        self._metrics.dead_letter(env.spec.name, error_type)


def _at(exc: DecodeError, env: Envelope) -> DecodeError:
    """Make sure a decode error names the source offset."""
    if env.where in str(exc):
        return exc
    wrapped = DecodeError(f"{exc} (record {env.where})")
    for attr in ("reason",):
        if hasattr(exc, attr):
            setattr(wrapped, attr, getattr(exc, attr))
    wrapped.__cause__ = exc
    return wrapped
