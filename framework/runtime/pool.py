"""The worker pool of one handler: long-lived worker coroutines and ordering lanes.

Records are never wrapped in a task each: ``concurrency`` worker coroutines pull
from a ready queue. Ordering is enforced with *lanes*: a lane (a partition, or a
partition and key) has at most one record ready or running; the others wait in
the lane's queue in offset order and become ready when their predecessor ends.
Unordered records have no lane.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from framework.registry import HandlerSpec
from framework.runtime.state import Envelope

log = structlog.get_logger("framework.runtime.pool")

Process = Callable[[Envelope], Awaitable[None]]


class HandlerPool:
    """Bounded concurrency and per-lane ordering for one handler."""

    def __init__(
        self,
        spec: HandlerSpec,
        process: Process,
        *,
        global_limit: asyncio.Semaphore | None = None,
        on_skip: Callable[[Envelope], None] | None = None,
    ) -> None:
        self.spec = spec
        self._process = process
        self._global = global_limit
        self._on_skip = on_skip
        self._ready: deque[Envelope] = deque()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._lanes: dict[Any, deque[Envelope]] = {}
        self._workers: list[asyncio.Task[None]] = []
        self._closing = False
        self.running = 0
        ordering = spec.ordering
        if ordering == "key":
            self._lane_of: Callable[[Envelope], Any] = _key_lane
        elif ordering == "partition":
            self._lane_of = _partition_lane
        else:
            self._lane_of = _no_lane

    def start(self) -> None:
        for i in range(self.spec.concurrency):
            self._workers.append(
                asyncio.create_task(self._work(), name=f"ktf-{self.spec.name}-{i}")
            )

    @property
    def queued(self) -> int:
        return len(self._ready) + sum(len(q) for q in self._lanes.values())

    def submit(self, env: Envelope) -> None:
        """Queue a fetched record; it runs when its lane and a worker are free."""
        lane = self._lane_of(env)
        if lane is not None:
            env.lane = lane
            waiting = self._lanes.get(lane)
            if waiting is not None:
                waiting.append(env)
                return
            self._lanes[lane] = deque()
        self._ready.append(env)
        self._wake()

    def _wake(self) -> None:
        waiters = self._waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return

    def _release(self, env: Envelope) -> None:
        lane = env.lane
        if lane is None:
            return
        waiting = self._lanes.get(lane)
        if waiting is None:
            return
        if waiting:
            self._ready.append(waiting.popleft())
            self._wake()
        else:
            del self._lanes[lane]

    async def _work(self) -> None:
        ready = self._ready
        loop = asyncio.get_running_loop()
        process = self._process
        glimit = self._global
        while True:
            if not ready:
                if self._closing:
                    return
                fut: asyncio.Future[None] = loop.create_future()
                self._waiters.append(fut)
                await fut
                continue
            env = ready.popleft()
            if env.state.revoked:
                # The partition moved to another member; its new owner will run it.
                self._release(env)
                if self._on_skip is not None:
                    self._on_skip(env)
                continue
            self.running += 1
            try:
                if glimit is None:
                    await process(env)
                else:
                    async with glimit:
                        if not _revoked(env):
                            await process(env)
                        elif self._on_skip is not None:
                            # Revoked while waiting for a global slot: the new owner runs it.
                            self._on_skip(env)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if self._closing or (task is not None and task.cancelling()):
                    raise
                # A stray cancellation must not take a worker coroutine down with it.
                log.error("task processing was cancelled unexpectedly", where=env.where)
            except Exception:  # process() routes handler errors; this is a framework bug
                log.exception("task processing crashed", where=env.where)
            finally:
                self.running -= 1
                self._release(env)

    async def stop(self) -> None:
        """Cancel the workers (after the caller drained or gave up waiting)."""
        self._closing = True
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers.clear()


def _revoked(env: Envelope) -> bool:
    # A function, not an inline attribute test: the flag changes while we await.
    return env.state.revoked


def _key_lane(env: Envelope) -> Any:
    return (env.topic, env.partition, env.key)


def _partition_lane(env: Envelope) -> Any:
    return env.state.tp


def _no_lane(env: Envelope) -> Any:
    return None
