"""Handler plugins: the ``@handler`` decorator and discovery by module path or entry point.

A handler is an ``async def handler(task, ctx)`` decorated with :func:`handler`. The
decorator only attaches a :class:`HandlerSpec`; nothing is registered globally, so
importing a plugin module twice (or in tests) has no side effects. Discovery scans
the given modules for decorated functions.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any, Literal, TypeVar, cast

from framework import headers as h
from framework.errors import HandlerLoadError
from framework.routing.policy import RetryPolicy

Ordering = Literal["key", "partition", "unordered"]
ORDERINGS: tuple[str, ...] = ("key", "partition", "unordered")
ENTRY_POINT_GROUP = "framework.handlers"

HandlerFn = Callable[[Any, Any], Awaitable[Any]]
F = TypeVar("F", bound=HandlerFn)

_SPEC_ATTR = "__ktf_handler__"


@dataclass(frozen=True)
class HandlerSpec:
    """Everything the runtime needs to know about one handler."""

    topic: str
    schema: str | dict[str, Any]
    fn: HandlerFn
    name: str
    result_schema: str | dict[str, Any] | None = None
    reply_topic: str | None = None
    ordering: Ordering = "key"
    concurrency: int = 100
    timeout: float | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    wire_format: str = "avro"

    @property
    def default_reply_topic(self) -> str | None:
        """Where results go when the task names no ``ktf-reply-to``."""
        if self.reply_topic is not None:
            return self.reply_topic
        if self.result_schema is not None:
            return h.reply_topic(self.topic)
        return None

    @property
    def dlq_topic(self) -> str:
        return h.dlq_topic(self.topic)

    def retry_topics(self) -> list[str]:
        return [h.retry_topic(self.topic, tier) for tier in self.retry.tiers]

    def topics_needed(self) -> list[str]:
        """Every topic this handler consumes from or produces to."""
        out = [self.topic, *self.retry_topics(), self.dlq_topic]
        reply = self.default_reply_topic
        if reply is not None:
            out.append(reply)
        return out


def handler(
    *,
    topic: str,
    schema: str | dict[str, Any],
    result_schema: str | dict[str, Any] | None = None,
    reply_topic: str | None = None,
    ordering: Ordering = "key",
    concurrency: int = 100,
    timeout: float | None = None,
    retry: RetryPolicy | None = None,
    wire_format: str = "avro",
    name: str | None = None,
) -> Callable[[F], F]:
    """Declare an ``async def`` as the handler of ``topic``.

    ``schema`` and ``result_schema`` are Avro full names resolved from the schemas
    directory (e.g. ``"ktf.examples.WordCountTask"``), paths to ``.avsc`` files, or
    schema dicts. ``ordering`` is ``"key"`` (one at a time per key, the default),
    ``"partition"`` or ``"unordered"``; ``concurrency`` bounds this handler's tasks in
    flight; ``timeout`` (seconds) cancels a run that takes longer.
    """
    if not topic or any(c.isspace() for c in topic):
        raise HandlerLoadError(f"handler topic {topic!r} is not a valid topic name")
    if ordering not in ORDERINGS:
        raise HandlerLoadError(
            f"handler for topic {topic!r}: ordering must be one of {', '.join(ORDERINGS)}, "
            f"got {ordering!r}"
        )
    if concurrency < 1:
        raise HandlerLoadError(f"handler for topic {topic!r}: concurrency must be >= 1")
    if timeout is not None and timeout <= 0:
        raise HandlerLoadError(f"handler for topic {topic!r}: timeout must be > 0 seconds")
    if wire_format not in ("avro", "single-object", "confluent"):
        raise HandlerLoadError(
            f"handler for topic {topic!r}: wire_format must be avro, single-object or "
            f"confluent, got {wire_format!r}"
        )

    def decorate(fn: F) -> F:
        if not inspect.iscoroutinefunction(fn):
            raise HandlerLoadError(
                f"handler {fn.__module__}.{fn.__qualname__} for topic {topic!r} must be "
                "an 'async def'"
            )
        spec = HandlerSpec(
            topic=topic,
            schema=schema,
            fn=fn,
            name=name or fn.__name__,
            result_schema=result_schema,
            reply_topic=reply_topic,
            ordering=ordering,
            concurrency=concurrency,
            timeout=timeout,
            retry=retry or RetryPolicy(),
            wire_format=wire_format,
        )
        setattr(fn, _SPEC_ATTR, spec)
        return cast(F, fn)

    return decorate


def spec_of(obj: object) -> HandlerSpec | None:
    """The spec attached by :func:`handler`, if any."""
    spec = getattr(obj, _SPEC_ATTR, None)
    return spec if isinstance(spec, HandlerSpec) else None


class HandlerRegistry:
    """The handlers a worker runs, keyed by topic (one handler per topic)."""

    def __init__(self, specs: Iterable[HandlerSpec] = ()) -> None:
        self._by_topic: dict[str, HandlerSpec] = {}
        for spec in specs:
            self.add(spec)

    def add(self, spec: HandlerSpec) -> None:
        existing = self._by_topic.get(spec.topic)
        if existing is not None and existing.fn is not spec.fn:
            raise HandlerLoadError(
                f"topic {spec.topic!r} is claimed by two handlers: "
                f"{_where(existing)} and {_where(spec)}"
            )
        self._by_topic[spec.topic] = spec

    def get(self, topic: str) -> HandlerSpec | None:
        return self._by_topic.get(topic)

    @property
    def specs(self) -> list[HandlerSpec]:
        return list(self._by_topic.values())

    @property
    def topics(self) -> list[str]:
        return list(self._by_topic)

    def __len__(self) -> int:
        return len(self._by_topic)


def _where(spec: HandlerSpec) -> str:
    return f"{spec.fn.__module__}.{spec.fn.__qualname__}"


def specs_in_module(module: ModuleType) -> list[HandlerSpec]:
    """Decorated handlers defined or imported at a module's top level."""
    found: list[HandlerSpec] = []
    for value in vars(module).values():
        spec = spec_of(value)
        if spec is not None:
            found.append(spec)
    return found


def import_handler_module(path: str) -> ModuleType:
    try:
        return importlib.import_module(path)
    except Exception as exc:
        origin = _module_file(path)
        raise HandlerLoadError(
            f"handler module {path!r}{origin} does not import: {type(exc).__name__}: {exc}"
        ) from exc


def _module_file(path: str) -> str:
    try:
        spec = importlib.util.find_spec(path)
    except Exception:
        return ""
    if spec is not None and spec.origin:
        return f" ({spec.origin})"
    return ""


def load_handlers(
    modules: Sequence[str] = (), *, use_entry_points: bool | None = None
) -> HandlerRegistry:
    """Import handler modules and collect their handlers.

    With ``modules`` given, only those are loaded (unless ``use_entry_points`` is
    True); without, every plugin of the ``framework.handlers`` entry-point group is.
    """
    registry = HandlerRegistry()
    for path in modules:
        module = import_handler_module(path)
        specs = specs_in_module(module)
        if not specs:
            raise HandlerLoadError(f"handler module {path!r} defines no @handler functions")
        for spec in specs:
            registry.add(spec)
    if use_entry_points or (use_entry_points is None and not modules):
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                obj = ep.load()
            except Exception as exc:
                raise HandlerLoadError(
                    f"entry point {ep.name!r} ({ep.value}) of group {ENTRY_POINT_GROUP!r} "
                    f"does not import: {type(exc).__name__}: {exc}"
                ) from exc
            if isinstance(obj, ModuleType):
                for spec in specs_in_module(obj):
                    registry.add(spec)
            else:
                found = spec_of(obj)
                if found is None:
                    raise HandlerLoadError(
                        f"entry point {ep.name!r} ({ep.value}) is neither a module nor a "
                        "@handler function"
                    )
                registry.add(found)
    if not registry:
        raise HandlerLoadError(
            "no handlers found: pass --handlers pkg.module or install a plugin in the "
            f"{ENTRY_POINT_GROUP!r} entry-point group"
        )
    return registry
