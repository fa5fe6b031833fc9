"""Building a task record's headers: task id, attempt, deadline, trace context.

Pure functions, no I/O: the async and sync clients and the CLI share them, and the
bytes they produce are the contract documented in docs/producing.md.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Mapping

from framework import headers as h
from framework.errors import ConfigError

#: What ``deadline=`` accepts; see :func:`deadline_ms`.
Deadline = dt.datetime | dt.timedelta | float | int

# Epoch milliseconds of 2001-09-09: anything smaller given as an int is almost
# certainly seconds (or a duration) passed by mistake.
_MIN_EPOCH_MS = 1_000_000_000_000

# Contract headers the client owns; a caller's ``headers=`` cannot override them.
_OWNED = frozenset({h.TASK_ID, h.ATTEMPT, h.DEADLINE, h.NOT_BEFORE, h.REPLY_TO, h.CORRELATION_ID})


def new_traceparent() -> str:
    """A W3C ``traceparent`` starting a new, sampled trace."""
    raw = os.urandom(24).hex()
    trace_id, span_id = raw[:32], raw[32:]
    # All-zero ids are invalid; with 128/64 random bits this is a formality.
    if trace_id == "0" * 32 or span_id == "0" * 16:
        return new_traceparent()
    return f"00-{trace_id}-{span_id}-01"


def deadline_ms(deadline: Deadline, *, now: float | None = None) -> int:
    """Turn a ``deadline=`` argument into epoch milliseconds (the ``ktf-deadline`` value).

    - ``datetime``: that instant (a naive datetime is local time, as ``.timestamp()``
      reads it);
    - ``timedelta`` or ``float``: that long from now (``deadline=30.0`` = in 30 s);
    - ``int``: already epoch milliseconds. An int below 10^12 (before 2001) is
      refused, because it is almost always seconds passed by mistake: pass a float.
    """
    current = time.time() if now is None else now
    if isinstance(deadline, bool):
        raise ConfigError(f"deadline: expected datetime, timedelta, float or int, got {deadline!r}")
    if isinstance(deadline, dt.datetime):
        return int(deadline.timestamp() * 1000)
    if isinstance(deadline, dt.timedelta):
        return int((current + deadline.total_seconds()) * 1000)
    if isinstance(deadline, int):
        if deadline < _MIN_EPOCH_MS:
            raise ConfigError(
                f"deadline {deadline}: an int is epoch milliseconds and this one is before "
                "2001; pass a float for seconds from now (e.g. 30.0)"
            )
        return deadline
    if isinstance(deadline, float):
        if deadline <= 0:
            raise ConfigError(f"deadline {deadline}: seconds from now must be > 0")
        return int((current + deadline) * 1000)
    raise ConfigError(
        f"deadline: expected datetime, timedelta, float or int, got {type(deadline).__name__}"
    )


def task_headers(
    task_id: str,
    *,
    deadline: int | None = None,
    reply_to: str | None = None,
    correlation_id: str | None = None,
    extra: Mapping[str, str] | None = None,
    not_before: int | None = None,
) -> list[tuple[str, bytes]]:
    """The headers of a first-attempt task record.

    ``extra`` headers come first; the ones the client owns (task id, attempt,
    deadline, reply-to, correlation id) cannot be overridden through it, while a
    caller's ``traceparent``/``tracestate`` is kept (continuing the caller's trace).
    Without one, a new trace is started.
    """
    out: list[tuple[str, bytes]] = []
    has_trace = False
    if extra:
        for name, value in extra.items():
            if name in _OWNED:
                raise ConfigError(
                    f"header {name!r} is set by the client; use the task_id=/deadline=/"
                    "delay=/run_at= arguments or call() instead"
                )
            if name == h.TRACEPARENT:
                has_trace = True
            out.append((name, value.encode("utf-8")))
    out.append((h.TASK_ID, task_id.encode("utf-8")))
    out.append((h.ATTEMPT, b"1"))
    if not has_trace:
        out.append((h.TRACEPARENT, new_traceparent().encode("ascii")))
    if deadline is not None:
        if not_before is not None and deadline <= not_before:
            raise ConfigError(
                f"deadline {deadline} is not after the delayed start {not_before}: the task "
                "would expire before it may run"
            )
        out.append((h.DEADLINE, str(deadline).encode("ascii")))
    if not_before is not None:
        out.append((h.NOT_BEFORE, str(not_before).encode("ascii")))
    if reply_to is not None:
        out.append((h.REPLY_TO, reply_to.encode("utf-8")))
    if correlation_id is not None:
        out.append((h.CORRELATION_ID, correlation_id.encode("utf-8")))
    return out
