"""What a periodic schedule is: its windows, its task id, its payload.

A schedule produces one task per *window*. A window is identified by its due time
(epoch milliseconds), computed the same way by every worker:

- ``every="30s"``: due times are the multiples of the period since the Unix epoch
  (UTC), so ``every="1h"`` is due on the hour whatever the time zone;
- ``cron="*/5 * * * *"`` with ``tz="Europe/Berlin"`` (an explicit IANA zone, default
  UTC): croniter evaluates the expression in wall-clock time of that zone. Across
  DST changes: a wall time that does not exist (spring forward) runs at the first
  instant after the gap; a wall time that occurs twice (fall back) runs once, at its
  first occurrence, when the hour field names hours, and at both occurrences when
  the hour field is ``*`` (an interval such as ``*/30 * * * *`` keeps its real
  spacing). This is what Vixie cron and its descendants do.

The task id of a window is ``<name>@<due ms>``: a new leader that fires a window
again by mistake would produce the same id, and handlers can de-duplicate on it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from framework.errors import ConfigError
from framework.routing.policy import parse_delay

CatchUp = Literal["skip", "latest", "all"]
CATCH_UP: tuple[str, ...] = ("skip", "latest", "all")
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
#: Windows fired (or skipped) per schedule in one leader tick; a backlog beyond
#: this is worked off over the following ticks.
MAX_WINDOWS_PER_TICK = 1_000

PayloadFn = Callable[[dt.datetime], Any]
F = TypeVar("F", bound=Callable[..., Any])
_ATTR = "__ktf_periodic__"


@dataclass(frozen=True)
class Schedule:
    """One periodic task: when (``every`` or ``cron``), where (``topic``), what (``payload``).

    ``payload`` is a mapping (the same task every time) or a function of the window's
    due time (a timezone-aware datetime in ``tz``) returning the task, sync or async.
    ``catch_up`` says what happens to windows missed while no leader ran (due more
    than ``grace`` seconds ago): ``skip`` them, fire only the ``latest``, or fire
    ``all`` of them, oldest first. ``jitter`` (seconds, below the period) delays each
    window by a deterministic amount in ``[0, jitter)``. ``max_instances``: skip a
    window while that many earlier runs of the schedule are unfinished.
    """

    name: str
    topic: str
    every: str | None = None
    cron: str | None = None
    tz: str = "UTC"
    payload: Mapping[str, Any] | PayloadFn | None = None
    key: str | None = None
    catch_up: CatchUp = "skip"
    jitter: float = 0.0
    max_instances: int | None = None
    grace: float = 2.0
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = f"schedule {self.name!r}"
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ConfigError(
                f"{where}: the name must be 1-200 characters of letters, digits, '.', '_' or '-'"
            )
        if not self.topic or any(c.isspace() for c in self.topic):
            raise ConfigError(f"{where}: topic {self.topic!r} is not a valid topic name")
        if (self.every is None) == (self.cron is None):
            raise ConfigError(f"{where}: give exactly one of every= or cron=")
        try:
            zone = ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigError(f"{where}: tz {self.tz!r} is not an IANA time zone") from exc
        object.__setattr__(self, "_zone", zone)
        if self.every is not None:
            try:
                period = parse_delay(self.every)
            except ConfigError:
                raise ConfigError(
                    f"{where}: every={self.every!r} is not a period like 500ms, 30s, 5m, 1h or 1d"
                ) from None
            if period < 0.1:
                raise ConfigError(f"{where}: every={self.every!r} is below 100ms")
            object.__setattr__(self, "_period_ms", round(period * 1000))
        else:
            if not isinstance(self.cron, str) or not croniter.is_valid(self.cron):
                raise ConfigError(f"{where}: cron={self.cron!r} is not a valid cron expression")
            hour_field = self.cron.split()[1] if len(self.cron.split()) >= 2 else "*"
            object.__setattr__(self, "_fixed_hours", hour_field != "*")
        if self.catch_up not in CATCH_UP:
            raise ConfigError(
                f"{where}: catch_up must be one of {', '.join(CATCH_UP)}, got {self.catch_up!r}"
            )
        if self.jitter < 0:
            raise ConfigError(f"{where}: jitter must be >= 0 seconds")
        if self.every is not None and self.jitter * 1000 >= self._period:
            raise ConfigError(f"{where}: jitter ({self.jitter}s) must be below the period")
        if self.grace < 0:
            raise ConfigError(f"{where}: grace must be >= 0 seconds")
        if self.max_instances is not None and self.max_instances < 1:
            raise ConfigError(f"{where}: max_instances must be >= 1")
        if self.payload is not None and not (
            isinstance(self.payload, Mapping) or callable(self.payload)
        ):
            raise ConfigError(f"{where}: payload must be a mapping or a function of the due time")

    # -- windows ------------------------------------------------------------------

    @property
    def _period(self) -> int:
        return cast(int, getattr(self, "_period_ms", 0))

    @property
    def zone(self) -> ZoneInfo:
        return cast(ZoneInfo, getattr(self, "_zone"))  # noqa: B009

    @property
    def expression(self) -> str:
        """How ``ktf schedules list`` shows the schedule."""
        if self.every is not None:
            return f"every {self.every}"
        return f"cron {self.cron} ({self.tz})"

    def next_due(self, after_ms: int) -> int:
        """The first due time strictly after ``after_ms`` (epoch ms)."""
        period = self._period
        if period:
            return (after_ms // period + 1) * period
        start = dt.datetime.fromtimestamp(after_ms / 1000.0, self.zone)
        it = croniter(cast(str, self.cron), start)
        fixed = bool(getattr(self, "_fixed_hours", False))
        while True:
            due: dt.datetime = it.get_next(dt.datetime)
            if fixed and _second_occurrence(due):
                continue
            return round(due.timestamp() * 1000)

    def due_between(self, after_ms: int, until_ms: int, limit: int) -> list[int]:
        """Due times in ``(after_ms, until_ms]``, oldest first, at most ``limit``."""
        out: list[int] = []
        due = self.next_due(after_ms)
        while due <= until_ms and len(out) < limit:
            out.append(due)
            due = self.next_due(due)
        return out

    def jitter_ms(self, due_ms: int) -> int:
        """This window's delay in ``[0, jitter)``: the same on every leader."""
        if not self.jitter:
            return 0
        digest = hashlib.blake2b(f"{self.name}@{due_ms}".encode(), digest_size=8).digest()
        return int(int.from_bytes(digest, "big") / 2**64 * self.jitter * 1000)

    def task_id(self, due_ms: int) -> str:
        return f"{self.name}@{due_ms}"

    # -- payload ------------------------------------------------------------------

    async def build_payload(self, due_ms: int) -> Any:
        """The task of the window due at ``due_ms``."""
        payload = self.payload
        if payload is None:
            return {}
        if isinstance(payload, Mapping):
            return dict(payload)
        value = payload(dt.datetime.fromtimestamp(due_ms / 1000.0, self.zone))
        if inspect.isawaitable(value):
            value = await value
        return value

    # -- configuration ------------------------------------------------------------

    @classmethod
    def from_config(cls, entry: Mapping[str, Any], where: str = "schedules") -> Schedule:
        """A schedule from a config-file table (``[[ktf.schedules]]``)."""
        allowed = {
            "name",
            "topic",
            "every",
            "cron",
            "tz",
            "payload",
            "key",
            "catch_up",
            "jitter",
            "max_instances",
            "grace",
            "headers",
        }
        unknown = sorted(set(entry) - allowed)
        label = f"{where}: entry {entry.get('name', '?')!r}"
        if unknown:
            raise ConfigError(f"{label}: unknown field(s) {', '.join(unknown)}")
        for required in ("name", "topic"):
            if not entry.get(required):
                raise ConfigError(f"{label}: field {required!r} is required")
        values = dict(entry)
        for name in ("jitter", "grace"):
            if isinstance(values.get(name), str):
                values[name] = parse_delay(values[name])
        payload = values.get("payload")
        if payload is not None and not isinstance(payload, Mapping):
            raise ConfigError(f"{label}: payload must be a table (a JSON object)")
        headers = values.get("headers") or {}
        if not isinstance(headers, Mapping):
            raise ConfigError(f"{label}: headers must be a table of strings")
        values["headers"] = {str(k): str(v) for k, v in headers.items()}
        try:
            return cls(**values)
        except TypeError as exc:
            raise ConfigError(f"{label}: {exc}") from exc


def _second_occurrence(due: dt.datetime) -> bool:
    """Whether ``due`` is the later of two instants with the same wall-clock time."""
    return due.replace(fold=0).utcoffset() != due.utcoffset()


def periodic(
    *,
    topic: str,
    every: str | None = None,
    cron: str | None = None,
    tz: str = "UTC",
    name: str | None = None,
    key: str | None = None,
    catch_up: CatchUp = "skip",
    jitter: float = 0.0,
    max_instances: int | None = None,
    grace: float = 2.0,
    headers: Mapping[str, str] | None = None,
) -> Callable[[F], F]:
    """Run the decorated function once per window and send its result to ``topic``.

    The function takes the window's due time (a datetime in ``tz``) and returns the
    task (a mapping in the topic's schema); it may be ``async``. Only the group's
    leader calls it. See :class:`Schedule` for the options and docs/scheduling.md.
    """

    def decorate(fn: F) -> F:
        schedule = Schedule(
            name=name or fn.__name__,
            topic=topic,
            every=every,
            cron=cron,
            tz=tz,
            payload=fn,
            key=key,
            catch_up=catch_up,
            jitter=jitter,
            max_instances=max_instances,
            grace=grace,
            headers=dict(headers or {}),
        )
        setattr(fn, _ATTR, schedule)
        return fn

    return decorate


def schedule_of(obj: object) -> Schedule | None:
    """The schedule a module attribute declares: a :class:`Schedule` or a ``@periodic``."""
    if isinstance(obj, Schedule):
        return obj
    found = getattr(obj, _ATTR, None)
    return found if isinstance(found, Schedule) else None
