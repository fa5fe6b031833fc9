"""Producing a task's outcome: replies, retry-tier records and dead letters.

Every record produced for a task is tracked on its envelope: the task's offset
counts as finished only once all of them are acknowledged by the broker, so a
crash between handler and delivery re-runs the task instead of losing its reply.
Delivery reports arrive on the producer's poll thread and are only queued here;
the fetch loop applies them on the event loop (see :meth:`Router.drain`).
"""

from __future__ import annotations

import time
import traceback
from collections import deque
from collections.abc import Callable
from typing import Any

import structlog

from framework import headers as h
from framework.kafka.producer import KafkaProducer
from framework.observability.tracing import TraceContext
from framework.runtime.state import Envelope

log = structlog.get_logger("framework.routing")

_STACK_LIMIT = 8_000
_MESSAGE_LIMIT = 2_000


class Router:
    """Builds outcome records with the contract headers and tracks their delivery."""

    def __init__(
        self,
        producer: KafkaProducer,
        *,
        group_id: str,
        on_finished: Callable[[Envelope], None],
        on_undeliverable: Callable[[Envelope, Exception], None],
        on_aborted: Callable[[Envelope], None] | None = None,
    ) -> None:
        self._producer = producer
        self._group_id = group_id
        self._on_finished = on_finished
        self._on_undeliverable = on_undeliverable
        self._on_aborted = on_aborted
        # (envelope, error or None, topic, critical) appended by the poll thread. A
        # non-critical record (the error reply beside a dead letter) may fail without
        # holding the task back: the dead letter already keeps it.
        self._reports: deque[tuple[Envelope, Any, str, bool]] = deque()

    # -- delivery accounting -------------------------------------------------------

    def begin(self, env: Envelope) -> None:
        """Hold the envelope open while its outcome records are being produced."""
        env.pending_deliveries += 1

    def end(self, env: Envelope) -> None:
        """Release the hold taken by :meth:`begin`."""
        self._settle(env)

    def abort(self, env: Envelope) -> None:
        """Release the hold of a task that did not finish (cancelled by shutdown)."""
        env.aborted = True
        self._settle(env)

    def _produce(
        self,
        env: Envelope,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        headers: list[tuple[str, bytes]],
        *,
        critical: bool = True,
    ) -> None:
        reports = self._reports

        def delivered(err: Any, _msg: Any) -> None:
            reports.append((env, err, topic, critical))

        env.pending_deliveries += 1
        try:
            self._producer.produce(topic, value, key=key, headers=headers, on_delivery=delivered)
        except Exception as exc:
            # Queue-full timeout or an invalid record: treat as a failed delivery.
            reports.append((env, exc, topic, critical))

    def drain(self) -> int:
        """Apply queued delivery reports (on the event loop). Returns how many."""
        reports = self._reports
        n = 0
        while reports:
            env, err, topic, critical = reports.popleft()
            n += 1
            if err is not None:
                if not critical:
                    log.warning(
                        "error reply could not be delivered; the dead letter keeps the task",
                        where=env.where,
                        topic=topic,
                        error=str(err),
                    )
                elif env.delivery_error is None:
                    env.delivery_error = RuntimeError(f"delivery to {topic!r} failed: {err}")
            self._settle(env)
        return n

    def _settle(self, env: Envelope) -> None:
        env.pending_deliveries -= 1
        if env.pending_deliveries > 0:
            return
        if env.aborted:
            if self._on_aborted is not None:
                self._on_aborted(env)
            return
        err = env.delivery_error
        if err is None:
            self._on_finished(env)
        elif not env.dead_lettered:
            # A reply or retry record could not be written: keep the task, dead-letter it.
            env.delivery_error = None
            self.begin(env)
            self.dead_letter(env, err, error_type="RoutingError")
            self.end(env)
        else:
            self._on_undeliverable(env, err)

    # -- outcome records -----------------------------------------------------------

    def _base_headers(self, env: Envelope, trace: TraceContext) -> dict[str, str]:
        out = {h.TASK_ID: task_id_of(env)}
        out.update(trace.to_headers())
        return out

    def reply_topic(self, env: Envelope) -> str | None:
        return env.header(h.REPLY_TO) or env.spec.default_reply_topic

    def reply(
        self,
        env: Envelope,
        *,
        status: str,
        value: bytes | None,
        trace: TraceContext,
        error: BaseException | None = None,
        error_type: str | None = None,
    ) -> bool:
        """Produce a reply if the task asked for one or its handler declares one."""
        topic = self.reply_topic(env)
        if topic is None:
            return False
        hdrs = self._base_headers(env, trace)
        hdrs[h.STATUS] = status
        hdrs[h.CORRELATION_ID] = env.header(h.CORRELATION_ID) or hdrs[h.TASK_ID]
        if error is not None:
            hdrs.update(error_headers(error, error_type))
        self._produce(env, topic, value, env.key, h.encode(hdrs), critical=not env.dead_lettered)
        return True

    def dead_letter(
        self,
        env: Envelope,
        error: BaseException,
        *,
        error_type: str | None = None,
        trace: TraceContext | None = None,
    ) -> None:
        """Send the original record, bytes unchanged, to ``<topic>.dlq``."""
        env.dead_lettered = True
        trace = trace or TraceContext.from_headers(_header_dict(env)).child()
        hdrs = _header_dict(env)
        hdrs.update(self._base_headers(env, trace))
        hdrs.update(error_headers(error, error_type))
        hdrs.update(original_headers(env))
        hdrs[h.ATTEMPT] = str(env.attempt)
        hdrs[h.CONSUMER_GROUP] = self._group_id
        hdrs[h.FAILED_AT] = str(int(time.time() * 1000))
        self._produce(env, dlq_for(env), env.value, env.key, h.encode(hdrs))

    def forward(
        self, env: Envelope, topic: str, extra: dict[str, str], trace: TraceContext
    ) -> None:
        """Send the original record, bytes unchanged, to ``topic`` (retry tiers)."""
        hdrs = _header_dict(env)
        hdrs.update(self._base_headers(env, trace))
        hdrs.update(original_headers(env))
        hdrs.update(extra)
        self._produce(env, topic, env.value, env.key, h.encode(hdrs))


def task_id_of(env: Envelope) -> str:
    """The task id header, or one derived from where the record sits."""
    return env.header(h.TASK_ID) or f"{env.topic}/{env.partition}/{env.offset}"


def dlq_for(env: Envelope) -> str:
    return env.spec.dlq_topic


def _header_dict(env: Envelope) -> dict[str, str]:
    return h.to_dict(env.headers)  # type: ignore[arg-type]


def original_headers(env: Envelope) -> dict[str, str]:
    """``ktf-original-*``: kept from the first hop so a record can always be traced back."""
    existing = env.header(h.ORIGINAL_TOPIC)
    if existing is not None:
        return {
            h.ORIGINAL_TOPIC: existing,
            h.ORIGINAL_PARTITION: env.header(h.ORIGINAL_PARTITION) or "",
            h.ORIGINAL_OFFSET: env.header(h.ORIGINAL_OFFSET) or "",
            h.ORIGINAL_TIMESTAMP: env.header(h.ORIGINAL_TIMESTAMP) or "",
        }
    return {
        h.ORIGINAL_TOPIC: env.topic,
        h.ORIGINAL_PARTITION: str(env.partition),
        h.ORIGINAL_OFFSET: str(env.offset),
        h.ORIGINAL_TIMESTAMP: str(env.timestamp),
    }


def error_headers(error: BaseException, error_type: str | None = None) -> dict[str, str]:
    message = str(error) or type(error).__name__
    stack = "".join(traceback.format_exception(error))
    return {
        h.ERROR_TYPE: error_type or type(error).__name__,
        h.ERROR_MESSAGE: message[:_MESSAGE_LIMIT],
        h.ERROR_STACK: stack[-_STACK_LIMIT:],
    }
