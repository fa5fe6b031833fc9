"""Finding schedules: ``@periodic`` functions and ``Schedule`` objects in plugin
modules, and ``[[ktf.schedules]]`` entries of the config file."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

from framework.errors import ConfigError, HandlerLoadError
from framework.registry import ENTRY_POINT_GROUP, import_handler_module
from framework.scheduling.schedule import Schedule, schedule_of


def schedules_in_module(module: ModuleType) -> list[Schedule]:
    found: list[Schedule] = []
    for value in vars(module).values():
        schedule = schedule_of(value)
        if schedule is not None and all(s is not schedule for s in found):
            found.append(schedule)
    return found


def load_schedules(
    modules: Sequence[str] = (), entries: Iterable[Mapping[str, Any]] = ()
) -> list[Schedule]:
    """The schedules of the handler modules (the entry-point plugins when none are
    named, as for handlers) and of the config entries; names must be unique."""
    found: list[Schedule] = []
    for path in modules:
        found.extend(schedules_in_module(import_handler_module(path)))
    if not modules:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                obj = ep.load()
            except Exception as exc:
                raise HandlerLoadError(
                    f"entry point {ep.name!r} ({ep.value}) does not import: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            if isinstance(obj, ModuleType):
                found.extend(schedules_in_module(obj))
            elif (single := schedule_of(obj)) is not None:
                found.append(single)
    for index, entry in enumerate(entries):
        found.append(Schedule.from_config(entry, where=f"schedules[{index}]"))
    by_name: dict[str, Schedule] = {}
    for schedule in found:
        other = by_name.get(schedule.name)
        if other is not None and other is not schedule:
            raise ConfigError(
                f"two schedules are named {schedule.name!r} (topics {other.topic!r} and "
                f"{schedule.topic!r}); give one of them another name="
            )
        by_name[schedule.name] = schedule
    return list(by_name.values())
