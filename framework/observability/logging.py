"""Structured logging: structlog for the framework, stdlib logging routed through it.

One pipeline renders both structlog and plain ``logging`` records (librdkafka
wrappers, third-party libraries), so every line has the same shape: JSON, one
object per line, when stderr is not a terminal (containers, CI), a readable
console rendering when it is. Task context (task id, topic, partition, offset,
attempt, trace id) lives in contextvars: bind it once when a task starts and
every line logged while it runs (including from the handler) carries it. Each
asyncio task runs in its own copy of the context, so concurrent tasks do not
see each other's fields.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from contextvars import ContextVar, Token
from typing import Any, TextIO

import structlog
from structlog.typing import Processor

from framework.errors import ConfigError

__all__ = [
    "TASK_CONTEXT_FIELDS",
    "add_process_fields",
    "add_task_context",
    "bind_process_fields",
    "bind_task_context",
    "clear_task_context",
    "configure_logging",
    "get_logger",
    "reset_current_task",
    "set_current_task",
]

#: The context fields a task's log lines carry.
TASK_CONTEXT_FIELDS = ("task_id", "topic", "partition", "offset", "attempt", "trace_id")

_LEVELS = {
    "CRITICAL": logging.CRITICAL,
    "ERROR": logging.ERROR,
    "WARNING": logging.WARNING,
    "WARN": logging.WARNING,
    "INFO": logging.INFO,
    "DEBUG": logging.DEBUG,
}


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at emit time (test capture swaps it)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._fixed = stream
        super().__init__(stream)

    @property
    def stream(self) -> TextIO:
        return self._fixed if self._fixed is not None else sys.stderr

    @stream.setter
    def stream(self, value: TextIO | None) -> None:
        # StreamHandler.__init__ assigns; only an explicit stream is kept.
        self._fixed = value if value is not None and value is not sys.stderr else self._fixed


#: The task a worker coroutine is running; one ContextVar.set per task is far cheaper
#: than binding six context variables, and the fields are read only when a line is
#: actually logged.
_current_task: ContextVar[Any] = ContextVar("ktf_current_task", default=None)

_TASK_FIELDS = ("task_id", "topic", "partition", "offset", "attempt")


def set_current_task(ctx: Any) -> Token[Any]:
    """Make ``ctx`` (a TaskContext) the task whose fields every log line carries."""
    return _current_task.set(ctx)


def reset_current_task(token: Token[Any]) -> None:
    _current_task.reset(token)


def add_task_context(_logger: Any, _method: str, event: Any) -> Any:
    """structlog processor: task id, topic, partition, offset, attempt and trace id."""
    ctx = _current_task.get()
    if ctx is not None:
        for name in _TASK_FIELDS:
            event.setdefault(name, getattr(ctx, name))
        event.setdefault("trace_id", ctx.trace.trace_id)
    return event


#: Fields every line of this process carries, from any thread (e.g. a supervised
#: worker's index): contextvars do not reach the consumer thread's callbacks.
_process_fields: dict[str, Any] = {}


def bind_process_fields(**fields: Any) -> None:
    """Add fields to every line this process logs from now on, on every thread."""
    _process_fields.update(fields)


def add_process_fields(_logger: Any, _method: str, event: Any) -> Any:
    """structlog processor: the fields of :func:`bind_process_fields`."""
    for key, value in _process_fields.items():
        event.setdefault(key, value)
    return event


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        add_process_fields,
        add_task_context,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]


def _resolve_level(level: str | int) -> int:
    if isinstance(level, int):
        return level
    try:
        return _LEVELS[level.strip().upper()]
    except KeyError:
        raise ConfigError(
            f"log_level must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got {level!r}"
        ) from None


def _use_json(fmt: str, stream: TextIO) -> bool:
    if fmt == "json":
        return True
    if fmt == "console":
        return False
    if fmt != "auto":
        raise ConfigError(f"log_format must be auto, json or console, got {fmt!r}")
    try:
        return not stream.isatty()
    except (AttributeError, ValueError):  # closed or exotic stream
        return True


def configure_logging(
    level: str | int = "INFO", fmt: str = "auto", *, stream: TextIO | None = None
) -> None:
    """Configure structlog and the stdlib root logger (safe to call again).

    ``fmt``: ``json``, ``console``, or ``auto`` (JSON unless stderr is a TTY).
    ``stream`` defaults to the current ``sys.stderr`` at each write.
    """
    numeric = _resolve_level(level)
    json_mode = _use_json(fmt, stream if stream is not None else sys.stderr)
    shared = _shared_processors()
    renderer: Processor
    if json_mode:
        renderer = structlog.processors.JSONRenderer()
        final: list[Processor] = [
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.dict_tracebacks,
            renderer,
        ]
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=_colors_ok(stream))
        final = [structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer]

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=final,
    )
    handler = _StderrHandler(stream)
    handler.setFormatter(formatter)
    handler._ktf = True  # type: ignore[attr-defined]

    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_ktf", False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.UnicodeDecoder(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: configure_logging may run again (tests, CLI flags) and loggers
        # created at import time must follow the new configuration.
        cache_logger_on_first_use=False,
    )


def _colors_ok(stream: TextIO | None) -> bool:
    target = stream if stream is not None else sys.stderr
    try:
        return bool(target.isatty())
    except (AttributeError, ValueError):
        return False


def get_logger(name: str | None = None, **initial: Any) -> Any:
    """A structlog logger (stdlib-backed), optionally with bound key/values."""
    logger = structlog.get_logger(name) if name else structlog.get_logger()
    return logger.bind(**initial) if initial else logger


def bind_task_context(**fields: Any) -> Mapping[str, Token[Any]]:
    """Bind task fields (task_id, topic, partition, offset, attempt, trace_id, ...).

    Fields whose value is None are skipped. Returns tokens for
    :func:`clear_task_context`, which restores the previous values.
    """
    values = {k: v for k, v in fields.items() if v is not None}
    return structlog.contextvars.bind_contextvars(**values)


def clear_task_context(tokens: Mapping[str, Token[Any]] | None = None) -> None:
    """Undo :func:`bind_task_context`: reset to ``tokens`` if given, else clear all fields."""
    if tokens:
        structlog.contextvars.reset_contextvars(**tokens)
    else:
        structlog.contextvars.clear_contextvars()
