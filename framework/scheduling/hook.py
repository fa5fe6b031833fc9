"""What a worker starts and stops for scheduling: delay tiers and the scheduler.

The worker calls :meth:`WorkerScheduling.start` once its router and not-before gate
exist and before it subscribes (the delay tiers it should consume are known then),
and :meth:`WorkerScheduling.stop` first thing when it stops (leadership moves on at
once instead of after a session timeout).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry

from framework.config import Settings
from framework.kafka.admin import KafkaAdmin
from framework.scheduling.catalog import load_schedules
from framework.scheduling.delay import DelayTiers, DueHeap
from framework.scheduling.schedule import Schedule
from framework.scheduling.scheduler import Scheduler
from framework.serde import TopicCodecs

if TYPE_CHECKING:
    from framework.registry import HandlerRegistry, HandlerSpec
    from framework.routing.router import Router
    from framework.runtime.state import Envelope

Offer = Callable[["Envelope"], None]


class WorkerScheduling:
    """Delay tiers (always) and the periodic scheduler (when there are schedules)."""

    def __init__(
        self,
        settings: Settings,
        registry: HandlerRegistry,
        codecs: Mapping[str, TopicCodecs],
        router: Router,
        *,
        gate_offer: Offer,
        submit: Offer,
        loop: asyncio.AbstractEventLoop,
        metrics_registry: CollectorRegistry | None = None,
        schedules: Sequence[Schedule] | None = None,
    ) -> None:
        self._settings = settings
        self._registry = registry
        self._codecs = codecs
        self._router = router
        self._gate_offer = gate_offer
        self._metrics_registry = metrics_registry
        self._schedules = schedules
        self.heap = DueHeap(submit, loop)
        self.delays: DelayTiers | None = None
        self.scheduler: Scheduler | None = None
        self._routes: dict[str, tuple[HandlerSpec, Offer]] = {}

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        settings = self._settings
        schedules = self._schedules
        if schedules is None:
            schedules = await loop.run_in_executor(
                None, load_schedules, settings.handlers, settings.schedules
            )
        existing = await loop.run_in_executor(
            None, lambda: set(KafkaAdmin(settings).topic_partitions(30.0))
        )
        self.delays = DelayTiers(self._registry, self._router, existing)
        for topic, (spec, index) in self.delays.tiers.items():
            offer = self.heap.offer if index == 0 else self._gate_offer
            self._routes[topic] = (spec, offer)
        if schedules:
            self.scheduler = Scheduler(
                settings, schedules, self._codecs, registry=self._metrics_registry
            )
            await self.scheduler.start()

    @property
    def topics(self) -> list[str]:
        """The delay tier topics to subscribe to (those that exist)."""
        return list(self._routes)

    @property
    def held(self) -> int:
        return self.heap.held

    def route(self, topic: str) -> tuple[Any, Offer | None]:
        """``(handler, offer)`` of a delay tier topic, ``(None, None)`` for others."""
        return self._routes.get(topic, (None, None))

    def defer(self, env: Envelope, hdrs: Mapping[str, str]) -> str | None:
        return self.delays.defer(env, hdrs) if self.delays is not None else None

    async def stop(self) -> None:
        if self.scheduler is not None:
            await self.scheduler.stop()
        self.heap.close()
