"""Running one record: check it, decode it, call the handler, route the outcome.

This is the per-record hot path, so it avoids work it does not need: headers are
decoded once, the trace context and the handler's logger are created lazily, and
the tenacity machinery for in-process retries is only built after a first failure.

Outcomes (docs/failures.md): ok -> reply; ``Reject`` or a permanent error -> dead
letter (+ error reply); a retriable error -> up to ``RetryPolicy.attempts``
in-process attempts, then the next retry tier, then the dead letter; past the
deadline -> ``expired`` reply; cancelled through ``ktf.control`` -> ``cancelled``
reply. Poison input (tombstones, oversized or undecodable bytes, tier records
whose original topic has no handler here) goes to the dead-letter topic with an
error naming the cause and the source offset.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    wait_exponential,
    wait_random,
)

from framework import headers as h
from framework.errors import (
    DecodeError,
    EncodeError,
    FrameworkError,
    Reject,
    Retry,
    TaskCancelled,
    TaskExpired,
    TaskTimeout,
)
from framework.observability.logging import reset_current_task, set_current_task
from framework.observability.metrics import WorkerMetrics
from framework.observability.tracing import TraceContext, spans_enabled, task_span
from framework.registry import HandlerSpec
from framework.routing.policy import RetryPolicy
from framework.routing.retry import next_hop
from framework.routing.router import Router, task_id_of
from framework.runtime.context import SubmitFn, TaskContext
from framework.runtime.state import Envelope
from framework.serde import TopicCodecs

log = structlog.get_logger("framework.runtime")

OUTCOME_OK = "ok"
OUTCOME_ERROR = "error"
OUTCOME_DEAD = "dead_lettered"
OUTCOME_RETRIED = "retried"
OUTCOME_EXPIRED = "expired"
OUTCOME_CANCELLED = "cancelled"
OUTCOME_TIMEOUT = "timeout"
OUTCOME_REJECTED = "rejected"

#: Records with a larger value are dead-lettered undecoded (``RecordTooLarge``): the
#: decoder never sees them. Kafka's default ``max.message.bytes`` is ~1 MiB, so this
#: only trips on topics configured for larger records.
MAX_RECORD_BYTES = 1_048_576

#: ``ktf-error-type`` of the poison-input causes that are not exceptions of their own.
ERROR_TOO_LARGE = "RecordTooLarge"
ERROR_NO_HANDLER = "NoHandler"


class TaskRunner:
    """Executes envelopes for every handler of a worker."""

    def __init__(
        self,
        codecs: Mapping[str, TopicCodecs],
        router: Router,
        metrics: WorkerMetrics,
        *,
        submit: SubmitFn | None = None,
        max_record_bytes: int | None = None,
    ) -> None:
        self._codecs = codecs
        self._router = router
        self._metrics = metrics
        self._submit = submit
        self._max_bytes = MAX_RECORD_BYTES if max_record_bytes is None else max_record_bytes
        # OpenTelemetry spans only when an SDK provider records them (checked once).
        self._spans = spans_enabled()
        #: task id -> running asyncio task, for cancellation across nodes
        self.running: dict[str, asyncio.Task[Any]] = {}
        self.is_cancelled: Callable[[str], bool] = lambda _task_id: False
        #: delayed tasks: moves a record whose ktf-not-before is ahead to a delay
        #: tier and returns the outcome, or returns None (due: run it)
        self.defer: Callable[[Envelope, Mapping[str, str]], str | None] | None = None

    def cancel(self, task_id: str) -> bool:
        """Cancel the task if it runs here (the runner then replies ``cancelled``)."""
        task = self.running.get(task_id)
        if task is None or task.done():
            return False
        task.cancel(f"task {task_id} cancelled through {h.CONTROL_TOPIC}")
        return True

    async def run(self, env: Envelope) -> None:
        spec = env.spec
        state = env.state
        state.in_flight += 1
        router = self._router
        router.begin(env)
        metrics = self._metrics
        started = time.perf_counter()
        outcome = OUTCOME_OK
        routed = False
        try:
            outcome = await self._run(env, spec)
            routed = True
        except Exception as exc:
            # A framework bug, not the handler's failure (those are routed in _run):
            # dead-letter the record rather than lose it or stall its partition.
            log.exception("task processing failed inside the framework", where=env.where)
            self._dead_letter(env, exc, _trace({}), "InternalError")
            outcome = OUTCOME_DEAD
            routed = True
        finally:
            now = time.perf_counter()
            e2e = time.time() - env.timestamp / 1000.0 if env.timestamp > 0 else None
            metrics.task_finished(spec.name, env.topic, outcome, now - started, e2e)
            if routed:
                router.end(env)
            else:
                # Cancelled by shutdown: the task did not finish, so its offset must
                # not count as finished (the next owner runs it again).
                router.abort(env)

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
            err: FrameworkError = TaskExpired(
                f"task {task_id}: deadline {deadline_ms} passed before it started"
            )
            self._reply_final(env, h.STATUS_EXPIRED, err, _trace(hdrs))
            return OUTCOME_EXPIRED
        if self.is_cancelled(task_id):
            err = TaskCancelled(f"task {task_id} was cancelled before it started")
            self._reply_final(env, h.STATUS_CANCELLED, err, _trace(hdrs))
            return OUTCOME_CANCELLED

        poison = self._poison(env, spec, hdrs)
        if poison is not None:
            self._dead_letter(env, poison[1], _trace(hdrs), poison[0])
            return OUTCOME_DEAD
        if self.defer is not None and h.NOT_BEFORE in hdrs:
            deferred = self.defer(env, hdrs)
            if deferred is not None:
                return deferred
        codecs = self._codecs[spec.topic]
        try:
            task = codecs.task.decode(env.value)  # type: ignore[arg-type]
        except DecodeError as exc:
            if exc.retriable:  # e.g. schema registry unavailable: not the record's fault
                return self._route_failure(env, exc, _trace(hdrs), "DecodeError")
            self._dead_letter(env, _at(exc, env), _trace(hdrs), "DecodeError")
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
        current = asyncio.current_task()
        assert current is not None
        self.running[task_id] = current
        log_token = set_current_task(ctx)
        try:
            call: Awaitable[Any]
            if spec.retry.attempts > 1:
                call = self._call_with_retries(spec, task, ctx, deadline_ms)
            elif spec.timeout is None and deadline_ms is None:
                call = spec.fn(task, ctx)  # the common case: no timer to arm
            else:
                call = _call_once(spec, task, ctx, deadline_ms)
            if self._spans:
                call = _in_span(call, spec, ctx, hdrs)
            result = await call
        except asyncio.CancelledError as exc:
            if current.cancelling() and self.is_cancelled(task_id):
                # Cancelled through the control topic: report it and keep the worker alive.
                current.uncancel()
                err = TaskCancelled(f"task {task_id} was cancelled while running")
                self._reply_final(env, h.STATUS_CANCELLED, err, ctx.trace)
                return OUTCOME_CANCELLED
            if current.cancelling():
                raise  # the worker itself is being stopped
            # The handler awaited something that was cancelled: its own failure.
            return self._route_failure(env, exc, ctx.trace, "CancelledError")
        except Exception as exc:
            return self._route_failure(env, exc, ctx.trace, type(exc).__name__)
        finally:
            reset_current_task(log_token)
            if self.running.get(task_id) is current:
                del self.running[task_id]

        if result is None and self._router.reply_topic(env) is None:
            # Nothing to send: skip building a trace context for the reply.
            return OUTCOME_OK
        try:
            payload = self._encode_result(spec, codecs, result)
        except EncodeError as exc:
            if exc.retriable:  # e.g. the schema registry is away: try the task again
                return self._route_failure(env, exc, ctx.trace, "EncodeError")
            self._dead_letter(env, exc, ctx.trace, "EncodeError")
            return OUTCOME_DEAD
        self._router.reply(env, status=h.STATUS_OK, value=payload, trace=ctx.trace)
        return OUTCOME_OK

    def _poison(
        self, env: Envelope, spec: HandlerSpec, hdrs: Mapping[str, str]
    ) -> tuple[str, FrameworkError] | None:
        """``(error type, error)`` when the record can never be processed here."""
        value = env.value
        if value is None:
            return "DecodeError", DecodeError(f"record {env.where} has no value (tombstone)")
        if len(value) > self._max_bytes:
            return ERROR_TOO_LARGE, FrameworkError(
                f"record {env.where} is {len(value)} bytes, over the {self._max_bytes}-byte "
                "limit; not decoded"
            )
        if env.topic != spec.topic:
            original = hdrs.get(h.ORIGINAL_TOPIC)
            if original is not None and original != spec.topic:
                return ERROR_NO_HANDLER, FrameworkError(
                    f"record {env.where} names original topic {original!r}, which has no "
                    f"handler here (tier of {spec.topic!r})"
                )
        return None

    async def _call_with_retries(
        self, spec: HandlerSpec, task: Any, ctx: TaskContext, deadline_ms: int | None
    ) -> Any:
        """Quick in-process attempts; the first is made before tenacity is involved."""
        try:
            return await _call_once(spec, task, ctx, deadline_ms)
        except Exception as exc:
            policy = spec.retry
            if not policy.is_retriable(exc) or _too_late(policy, exc, deadline_ms, 1):
                raise
            first_wait = max(policy.backoff, _retry_delay(exc))
        # The first backoff is ours; tenacity's waits continue the series from 2x backoff.
        await asyncio.sleep(first_wait)
        retrying = AsyncRetrying(
            stop=_InProcessStop(spec.retry, deadline_ms),
            wait=_InProcessWait(spec.retry),
            retry=retry_if_exception(spec.retry.is_retriable),
            reraise=True,
        )
        return await retrying(_call_once, spec, task, ctx, deadline_ms)

    def _route_failure(
        self, env: Envelope, exc: BaseException, trace: TraceContext, error_type: str
    ) -> str:
        """A failed attempt: expired reply, next retry tier, or the dead-letter topic."""
        if isinstance(exc, TaskExpired):
            self._reply_final(env, h.STATUS_EXPIRED, exc, trace)
            return OUTCOME_EXPIRED
        if isinstance(exc, Reject):
            self._dead_letter(env, exc, trace, "Reject")
            return OUTCOME_REJECTED
        spec = env.spec
        if spec.retry.tiers and spec.retry.is_retriable(exc):
            delay = exc.delay if isinstance(exc, Retry) else None
            hop = next_hop(spec, env.topic, env.attempt, delay=delay)
            if hop is not None:
                extra = {
                    h.ATTEMPT: str(env.attempt + 1),
                    h.NOT_BEFORE: str(hop.not_before_ms),
                    h.ERROR_TYPE: error_type,
                    h.ERROR_MESSAGE: (str(exc) or error_type)[:500],
                }
                self._router.forward(env, hop.topic, extra, trace.child())
                self._metrics.retry(spec.name, hop.tier)
                return OUTCOME_RETRIED
        self._dead_letter(env, exc, trace, error_type)
        return OUTCOME_TIMEOUT if isinstance(exc, TaskTimeout) else OUTCOME_DEAD

    def _reply_final(
        self, env: Envelope, status: str, err: BaseException, trace: TraceContext
    ) -> None:
        self._router.reply(env, status=status, value=None, trace=trace, error=err)

    @staticmethod
    def _encode_result(spec: HandlerSpec, codecs: TopicCodecs, result: Any) -> bytes | None:
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
        log.warning("task dead-lettered", where=env.where, error_type=error_type, error=str(exc))


async def _call_once(
    spec: HandlerSpec, task: Any, ctx: TaskContext, deadline_ms: int | None
) -> Any:
    """One handler call under its timeout and the task's deadline."""
    timeout = spec.timeout
    if deadline_ms is not None:
        left = deadline_ms / 1000.0 - time.time()
        timeout = left if timeout is None else min(timeout, left)
    if timeout is None:
        return await spec.fn(task, ctx)
    guard = asyncio.timeout(timeout)
    try:
        async with guard:
            return await spec.fn(task, ctx)
    except TimeoutError:
        if not guard.expired():
            raise  # the handler's own TimeoutError, not ours
        if deadline_ms is not None and time.time() * 1000 >= deadline_ms - 1:
            raise TaskExpired(
                f"task {ctx.task_id} passed its deadline {deadline_ms} while running; cancelled"
            ) from None
        raise TaskTimeout(
            f"handler {spec.name} ran longer than its {spec.timeout}s timeout "
            f"(record {ctx.topic}[{ctx.partition}]@{ctx.offset}); cancelled"
        ) from None


async def _in_span(
    call: Awaitable[Any], spec: HandlerSpec, ctx: TaskContext, hdrs: Mapping[str, str]
) -> Any:
    """Await the handler inside an OpenTelemetry span, child of the caller's span."""
    with task_span(
        f"ktf.task {spec.name}",
        TraceContext.from_headers(hdrs),
        **{
            "messaging.system": "kafka",
            "messaging.destination.name": ctx.topic,
            "messaging.kafka.destination.partition": ctx.partition,
            "messaging.kafka.message.offset": ctx.offset,
            "ktf.task_id": ctx.task_id,
            "ktf.attempt": ctx.attempt,
        },
    ):
        return await call


def _retry_delay(exc: BaseException | None) -> float:
    if isinstance(exc, Retry) and exc.delay is not None:
        return exc.delay
    return 0.0


def _too_late(policy: RetryPolicy, exc: BaseException, deadline_ms: int | None, done: int) -> bool:
    """Whether no further in-process attempt should be made after ``done`` attempts."""
    if done >= policy.attempts:
        return True
    wait = _retry_delay(exc)
    if wait > policy.max_backoff:
        return True  # the handler asked for more than the in-process budget: use a tier
    wait = max(wait, policy.backoff)
    return deadline_ms is not None and time.time() + wait >= deadline_ms / 1000.0


class _InProcessStop:
    """tenacity stop: attempts spent, a long ``Retry(delay=)``, or the deadline near."""

    def __init__(self, policy: RetryPolicy, deadline_ms: int | None) -> None:
        self._policy = policy
        self._deadline_ms = deadline_ms

    def __call__(self, state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome is not None else None
        # +1: the first attempt ran before tenacity took over.
        return exc is None or _too_late(
            self._policy, exc, self._deadline_ms, state.attempt_number + 1
        )


class _InProcessWait:
    """Exponential backoff with jitter, at least the delay a ``Retry`` asked for."""

    def __init__(self, policy: RetryPolicy) -> None:
        # wait_exponential + wait_random: the same in every tenacity >= 8.2.
        self._exp = wait_exponential(
            multiplier=2 * policy.backoff, min=policy.backoff, max=policy.max_backoff
        ) + wait_random(0, policy.backoff / 2)

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        return max(self._exp(state), _retry_delay(exc))


def _trace(hdrs: Mapping[str, str]) -> TraceContext:
    return TraceContext.from_headers(hdrs).child()


def _at(exc: DecodeError, env: Envelope) -> DecodeError:
    """The decode error with its reason code first and the source offset named."""
    reason = getattr(exc, "reason", None)
    text = str(exc)
    if reason and not text.startswith(f"[{reason}]"):
        text = f"[{reason}] {text}"
    if env.where not in text:
        text = f"{text} (record {env.where})"
    if text == str(exc):
        return exc
    wrapped = DecodeError(text)
    if reason is not None:
        wrapped.reason = reason  # type: ignore[attr-defined]
    wrapped.__cause__ = exc
    return wrapped
