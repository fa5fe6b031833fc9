"""The event loop a worker runs on: uvloop unless ``--loop asyncio`` (``KTF_LOOP``).

uvloop (libuv underneath) makes each loop iteration, timer and socket wake-up
cheaper than the standard selector loop; the worker's per-task path is mostly such
wake-ups (figures: docs/performance.md). It is a dependency of the default install
except on Windows; where it cannot be imported the standard loop is used and the
log says so once, rather than refusing to start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import structlog

__all__ = ["LOOPS", "loop_factory", "run"]

log = structlog.get_logger("framework.eventloop")

#: Accepted values of the ``loop`` setting.
LOOPS = ("uvloop", "asyncio")

T = TypeVar("T")

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def loop_factory(name: str) -> tuple[LoopFactory | None, str]:
    """The factory for loop ``name`` (None: asyncio's default) and the loop actually used."""
    if name not in LOOPS:
        from framework.errors import ConfigError

        raise ConfigError(f"loop must be one of {', '.join(LOOPS)}, got {name!r}")
    if name == "asyncio":
        return None, "asyncio"
    try:
        import uvloop
    except ImportError as exc:
        log.warning(
            "uvloop is not installed: using the standard asyncio loop "
            "(pip install uvloop, or set --loop asyncio to silence this)",
            error=str(exc),
        )
        return None, "asyncio"
    return uvloop.new_event_loop, "uvloop"


def run(main: Coroutine[Any, Any, T], loop: str = "uvloop") -> T:
    """Run ``main`` to completion on a new loop of kind ``loop`` (like ``asyncio.run``)."""
    factory, used = loop_factory(loop)
    log.debug("event loop", loop=used)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
