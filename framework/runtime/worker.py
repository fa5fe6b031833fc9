"""The worker: a consumer-group member that runs handlers in an asyncio pool.

Threads: all consumer calls run on one dedicated thread (``ktf-consumer``) so the
event loop never blocks; rebalance callbacks fire on that thread inside
``consume()`` and hand their work to the loop with ``run_coroutine_threadsafe``
(the loop is free then: it is awaiting the consume call). Delivery reports come
from the producer's poll thread and are applied by the fetch loop.

Lifecycle: ``await start()`` / ``await stop()`` or ``async with Worker(...)``.
:meth:`run` adds signal handling for the command line.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import structlog

from framework import headers as h
from framework.config import Settings
from framework.errors import ConfigError, FrameworkError, KafkaError
from framework.kafka.consumer import TP, KafkaConsumer
from framework.kafka.preflight import check_connection
from framework.kafka.producer import KafkaProducer
from framework.kafka.roles import WorkerProducers
from framework.observability.announce import Announcer, member_id_of
from framework.observability.health import HealthServer, HealthState
from framework.observability.metrics import WorkerMetrics
from framework.registry import HandlerRegistry, load_handlers
from framework.routing.control import DEFAULT_WINDOW, Cancellations
from framework.routing.retry import NotBeforeGate, consumed_topics, tier_map
from framework.routing.router import Router
from framework.runtime.execution import TaskRunner
from framework.runtime.flow import FlowControl
from framework.runtime.pool import HandlerPool
from framework.runtime.state import Envelope, PartitionState
from framework.scheduling.delay import CANCEL_WINDOW
from framework.scheduling.hook import WorkerScheduling
from framework.scheduling.schedule import Schedule
from framework.serde import SchemaStore, TopicCodecs

log = structlog.get_logger("framework.worker")

_GAUGE_INTERVAL = 1.0
#: Least time given to leaving the group at shutdown, beyond what the drain left.
_CLOSE_TIMEOUT_MIN = 3.0


class Worker:
    """Consumes the handlers' topics and runs their tasks. See the module docstring."""

    def __init__(
        self,
        settings: Settings,
        registry: HandlerRegistry | None = None,
        *,
        schemas: SchemaStore | None = None,
        metrics: WorkerMetrics | None = None,
        serve_http: bool | None = None,
        schedules: Sequence[Schedule] | None = None,
    ) -> None:
        self.settings = settings
        self._registry = registry
        # None: the @periodic schedules of the handler modules (settings.handlers, else
        # the entry-point plugins) and the config file's [[ktf.schedules]].
        self._schedules = schedules
        self._schemas = schemas
        self.metrics = metrics or WorkerMetrics()
        self.health = HealthState(stall_timeout=settings.stall_timeout)
        self._serve_http = settings.metrics_port > 0 if serve_http is None else serve_http
        self._http: HealthServer | None = None
        self._states: dict[TP, PartitionState] = {}
        self._pools: dict[str, HandlerPool] = {}
        self._codecs: dict[str, TopicCodecs] = {}
        self._flow = FlowControl(settings)
        self._executor: ThreadPoolExecutor | None = None
        self._consumer: KafkaConsumer | None = None
        self._producer: KafkaProducer | None = None
        self._producers: WorkerProducers | None = None  # outcomes and sub-tasks
        self._router: Router | None = None
        self._runner: TaskRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fetch_task: asyncio.Task[None] | None = None
        self._stop_event = asyncio.Event()
        self._stopping = False
        self._started = False
        self._failed: BaseException | None = None
        self._commit_failures: deque[TP] = deque()
        self._undeliverable = 0
        #: observers for tests and tools: (event, partitions)
        self.events: deque[tuple[str, list[TP]]] = deque(maxlen=1000)
        # issue 4 hook: retry tiers (held until ktf-not-before) and ktf.control cancels
        self._tiers: dict[str, Any] = {}
        self._gate: NotBeforeGate | None = None
        self._control: Cancellations | None = None
        self._announcer: Announcer | None = None  # ops hook: ktf.workers discovery
        # delayed tasks and periodic schedules (framework.scheduling)
        self._scheduling: WorkerScheduling | None = None

    # -- public lifecycle -----------------------------------------------------------

    @property
    def registry(self) -> HandlerRegistry:
        if self._registry is None:
            self._registry = load_handlers(self.settings.handlers)
        return self._registry

    @property
    def http_port(self) -> int | None:
        return self._http.port if self._http is not None else None

    async def __aenter__(self) -> Worker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Load schemas and handlers, connect, subscribe and start the fetch loop."""
        if self._started:
            return
        self._started = True
        self._loop = asyncio.get_running_loop()
        # ops hook: a wrong password or untrusted CA is one clear error, not a retry storm
        await self._loop.run_in_executor(None, check_connection, self.settings)
        registry = self.registry
        store = self._schemas or SchemaStore.load([self.settings.schemas_dir])
        codecs = build_codecs(registry, store, self.settings)

        if self._serve_http:
            self._http = HealthServer(
                self.settings.metrics_port,
                self.metrics.registry,
                self.health,
                host=self.settings.metrics_host,
            )
            self._http.start()

        self._producers = WorkerProducers(self.settings)
        self._producers.start()
        self._producer = self._producers.outcomes
        self._router = Router(
            self._producer,
            group_id=self.settings.group_id,
            on_finished=self._finished,
            on_undeliverable=self._undeliverable_record,
            on_aborted=self._aborted,
        )
        self._codecs = codecs
        self._runner = TaskRunner(codecs, self._router, self.metrics, submit=self._submit_subtask)
        # issue 4 hook: tier topics map back to their handler; cancels via ktf.control
        self._tiers = tier_map(registry)
        self._gate = NotBeforeGate(lambda e: self._pools[e.spec.topic].submit(e), self._loop)
        # A delayed task cancelled before it is due must still be known when it comes up.
        self._control = Cancellations(
            self.settings,
            self._runner.cancel,
            self._loop,
            window=max(DEFAULT_WINDOW, CANCEL_WINDOW),
        )
        self._runner.is_cancelled = self._control.is_cancelled
        self._control.start()
        total_concurrency = sum(s.concurrency for s in registry.specs)
        limit = (
            asyncio.Semaphore(self.settings.max_in_flight)
            if total_concurrency > self.settings.max_in_flight
            else None
        )
        for spec in registry.specs:
            pool = HandlerPool(spec, self._runner.run, global_limit=limit)
            pool.start()
            self._pools[spec.topic] = pool
        self._scheduling = WorkerScheduling(
            self.settings,
            registry,
            codecs,
            self._router,
            gate_offer=self._gate.offer,
            submit=lambda e: self._pools[e.spec.topic].submit(e),
            loop=self._loop,
            metrics_registry=self.metrics.registry,
            schedules=self._schedules,
        )
        await self._scheduling.start()
        self._runner.defer = self._scheduling.defer

        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ktf-consumer")
        self._consumer = KafkaConsumer(
            self.settings,
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
            on_commit_result=self._on_commit_result,
            on_stats=self.metrics.update_from_stats,
            stats_interval_ms=5_000,
        )
        await self._call(
            self._consumer.start, consumed_topics(registry) + self._scheduling.topics
        )  # issue 4: + tiers
        self.health.beat()
        self.health.set_ready(True)
        self._fetch_task = asyncio.create_task(self._fetch_loop(), name="ktf-fetch-loop")
        self._announcer = Announcer(  # ops hook: announce identity and /metrics on ktf.workers
            self.settings,
            consumed_topics(registry),
            metrics_port=lambda: self.http_port,
            member_id=lambda: member_id_of(self._consumer),
        )
        await self._announcer.start()
        log.info(
            "worker started",
            group=self.settings.group_id,
            topics=registry.topics,
            bootstrap=self.settings.bootstrap_servers,
            metrics_port=self.http_port,
        )

    async def wait(self) -> None:
        """Until :meth:`request_stop` is called or the fetch loop fails."""
        await self._stop_event.wait()
        if self._failed is not None:
            raise self._failed

    def request_stop(self) -> None:
        self._stop_event.set()

    async def run(self, *, install_signal_handlers: bool = True) -> int:
        """Start, run until SIGTERM/SIGINT, drain and stop. Returns an exit code."""
        loop = asyncio.get_running_loop()
        signals = 0

        def on_signal(signum: int) -> None:
            nonlocal signals
            signals += 1
            if signals == 1:
                log.info(
                    "stopping: draining in-flight tasks",
                    signal=signal.Signals(signum).name,
                    drain_timeout=self.settings.drain_timeout,
                )
                self.request_stop()
            else:
                log.warning("second signal: exiting without draining")
                os._exit(128 + signum)

        if install_signal_handlers:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, on_signal, sig)
        try:
            await self.start()
            await self.wait()
        finally:
            await self.stop()
            if install_signal_handlers:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)
        return 0 if self._failed is None else 1

    async def stop(self, drain_timeout: float | None = None) -> None:
        """Stop fetching, finish in-flight tasks (bounded), commit, leave the group."""
        if self._stopping or not self._started:
            return
        self._stopping = True
        self._stop_event.set()
        self.health.set_ready(False, "stopping")
        # ops hook: tombstone on ktf.workers, written while the drain runs
        leaving = asyncio.ensure_future(self._announcer.stop()) if self._announcer else None
        if self._scheduling is not None:
            await self._scheduling.stop()
        timeout = self.settings.drain_timeout if drain_timeout is None else drain_timeout
        deadline = time.monotonic() + timeout
        if self._fetch_task is not None:
            with contextlib.suppress(Exception):
                await self._fetch_task
        consumer = self._consumer
        try:
            if consumer is not None and consumer.raw is not None:
                # Queued records are not started; their offsets stay uncommitted.
                for state in self._states.values():
                    state.revoked = True
                await self._call(consumer.pause, list(self._states))
                await self._drain_until(lambda: self._in_flight() == 0, deadline, poll=True)
                if self._in_flight():
                    log.warning("drain timeout: tasks still running", running=self._in_flight())
                # A synchronous commit blocks while the group coordinator is away; the
                # drain bound applies to it too (close() below aborts it).
                await asyncio.wait_for(
                    self._commit(sync=True), max(1.0, deadline - time.monotonic())
                )
        except TimeoutError:
            log.warning("final commit timed out (is the broker reachable?); closing anyway")
        except FrameworkError as exc:
            log.error("error while draining", error=str(exc))
        finally:
            if leaving is not None:  # ops hook: the tombstone was written meanwhile
                await leaving
            if consumer is not None:
                close_timeout = max(_CLOSE_TIMEOUT_MIN, deadline - time.monotonic() + 5.0)
                if not await _close_bounded(consumer, close_timeout):
                    log.error(
                        "leaving the group timed out (is the broker reachable?); exiting anyway",
                        timeout=round(close_timeout, 1),
                    )
            for pool in self._pools.values():
                await pool.stop()
            if self._producers is not None:
                remaining = max(0.5, deadline - time.monotonic())
                await asyncio.get_running_loop().run_in_executor(
                    None, self._producers.close, remaining
                )
            if self._router is not None:
                self._router.drain()
            if self._gate is not None:  # issue 4 hook
                self._gate.close()
            if self._control is not None:  # issue 4 hook
                await asyncio.get_running_loop().run_in_executor(None, self._control.stop)
            if self._executor is not None:
                self._executor.shutdown(wait=False)
            for pair in self._codecs.values():
                pair.task.close()
                if pair.result is not None:
                    pair.result.close()
            if self._http is not None:
                self._http.stop()
            log.info("worker stopped", undeliverable=self._undeliverable)

    # -- sub-tasks ----------------------------------------------------------------------

    async def _submit_subtask(
        self,
        topic: str,
        payload: Mapping[str, Any],
        *,
        key: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> str:
        """``ctx.submit``: encode with the topic's handler schema, produce, await the ack.

        Awaiting the broker's acknowledgement before the handler returns keeps the
        parent's offset from being committed ahead of its sub-tasks.
        """
        codecs = self._codecs.get(topic)
        if codecs is None:
            raise ConfigError(
                f"sub-task topic {topic!r} has no handler in this worker, so its schema is "
                f"unknown; handlers here: {', '.join(sorted(self._codecs)) or 'none'}"
            )
        value = codecs.task.encode(payload)
        task_id = h.new_id()
        hdrs = dict(headers or {})
        hdrs.update({h.TASK_ID: task_id, h.ATTEMPT: "1"})
        assert self._producers is not None
        await self._producers.subtasks.send(topic, value, key=key, headers=h.encode(hdrs))
        return task_id

    # -- the fetch loop ---------------------------------------------------------------

    async def _call(self, fn: Any, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    async def _fetch_loop(self) -> None:
        consumer = self._consumer
        router = self._router
        assert consumer is not None and router is not None
        settings = self.settings
        batch, poll_timeout = settings.batch_size, settings.poll_timeout
        next_commit = time.monotonic() + settings.commit_interval
        next_gauges = 0.0
        try:
            while not self._stopping:
                messages = await self._call(consumer.consume_ready, batch, poll_timeout)
                self.health.beat()
                if messages:
                    self._dispatch(messages)
                router.drain()
                await self._apply_flow()
                now = time.monotonic()
                if now >= next_commit:
                    next_commit = now + settings.commit_interval
                    await self._commit(sync=False)
                if now >= next_gauges:
                    next_gauges = now + _GAUGE_INTERVAL
                    self._update_gauges()
        except Exception as exc:
            log.exception("fetch loop failed")
            self._failed = exc
            self._stop_event.set()

    def _dispatch(self, messages: list[Any]) -> None:
        states = self._states
        pools = self._pools
        registry = self.registry
        # Records of one partition arrive together: resolve state, spec and pool once
        # per run of records rather than once per record.
        last: tuple[str | None, int | None] = (None, None)
        state: PartitionState | None = None
        spec: Any = None
        submit: Any = None
        for msg in messages:
            topic, partition = msg.topic(), msg.partition()
            if (topic, partition) != last:
                last = (topic, partition)
                state = states.get(last)  # type: ignore[arg-type]
                spec = registry.get(topic)
                submit = None
                if spec is not None:
                    submit = pools[spec.topic].submit
                else:
                    spec = self._tiers.get(topic)  # issue 4: a retry tier of a handler
                    if spec is not None:
                        # A retry record waits for its not-before.
                        submit = self._gate.offer  # type: ignore[union-attr]
                    elif self._scheduling is not None:  # a delay tier of a handler
                        spec, submit = self._scheduling.route(topic)
            if state is None or state.revoked or submit is None:
                continue
            offset = msg.offset()
            state.tracker.add(offset)
            state.buffered += 1
            submit(
                Envelope(
                    state, spec, offset, msg.key(), msg.value(), msg.headers(), msg.timestamp()[1]
                )
            )

    async def _apply_flow(self) -> None:
        held = self._gate.held if self._gate is not None else 0
        if self._scheduling is not None:
            held += self._scheduling.held
        pause, resume = self._flow.decide(self._states.values(), exempt=held)
        if (pause or resume) and self._consumer is not None:
            if pause:
                await self._call(self._consumer.pause, pause)
            if resume:
                await self._call(self._consumer.resume, resume)
            if pause:
                self.events.append(("pause", pause))
            if resume:
                self.events.append(("resume", resume))

    def _update_gauges(self) -> None:
        states = self._states.values()
        self.metrics.set_buffered(sum(s.buffered for s in states))
        self.metrics.set_paused(sum(1 for s in states if s.paused))
        self.metrics.set_assigned_partitions(len(self._states))  # ops hook: gauge + /readyz
        self.health.set_assigned(len(self._states))
        # Sampled rather than counted per task: instrumentation stays off the hot path.
        for pool in self._pools.values():
            self.metrics.set_in_flight(pool.spec.name, pool.running)

    # -- completion -------------------------------------------------------------------

    def _finished(self, env: Envelope) -> None:
        state = env.state
        state.tracker.done(env.offset)
        state.buffered -= 1
        state.in_flight -= 1

    def _aborted(self, env: Envelope) -> None:
        # Not finished: the tracker keeps the offset open, so no commit passes it.
        state = env.state
        state.buffered -= 1
        state.in_flight -= 1

    def _undeliverable_record(self, env: Envelope, err: Exception) -> None:
        # Neither the outcome nor the dead letter could be written: keep the offset
        # uncommitted (the partition stops advancing) rather than lose the task.
        self._undeliverable += 1
        env.state.in_flight -= 1
        log.error(
            "task outcome could not be delivered; its offset will not be committed",
            where=env.where,
            error=str(err),
        )

    def _in_flight(self) -> int:
        return sum(s.in_flight for s in self._states.values())

    async def _drain_until(self, done: Any, deadline: float, *, poll: bool) -> None:
        """Wait for ``done()`` while applying delivery reports (and keep the member alive)."""
        router = self._router
        assert router is not None
        while True:
            router.drain()
            if done() or time.monotonic() >= deadline:
                return
            if poll and self._consumer is not None:
                # Partitions are paused: this only keeps the group membership alive.
                await self._call(self._consumer.consume, 1, 0.05)
                self.health.beat()
            else:
                await asyncio.sleep(0.01)

    # -- offsets ----------------------------------------------------------------------

    def _committable(self, states: Sequence[PartitionState] | None = None) -> dict[TP, int]:
        offsets: dict[TP, int] = {}
        for state in states if states is not None else self._states.values():
            point = state.tracker.committable()
            if point is not None:
                offsets[state.tp] = point
        return offsets

    async def _commit(self, *, sync: bool) -> None:
        while self._commit_failures:
            tp = self._commit_failures.popleft()
            state = self._states.get(tp)
            if state is not None:
                state.tracker.mark_committed(-1)
        offsets = self._committable()
        if not offsets or self._consumer is None:
            return
        consumer = self._consumer
        try:
            await self._call(lambda: consumer.commit(offsets, asynchronous=not sync))
        except KafkaError as exc:
            self.metrics.commit_failure()
            log.warning("commit failed", error=str(exc))
            return
        for tp, off in offsets.items():
            state = self._states.get(tp)
            if state is not None:
                state.tracker.mark_committed(off)

    def _on_commit_result(self, err: Exception | None, tps: list[TP]) -> None:
        if err is not None:
            self.metrics.commit_failure()
            self._commit_failures.extend(tps)
            log.warning("async commit failed", error=str(err))

    # -- rebalance callbacks (consumer thread) ------------------------------------------

    def _on_assign(self, tps: list[TP]) -> None:
        self.metrics.rebalance("assign")
        consumer = self._consumer
        if consumer is not None:
            # librdkafka keeps a partition's pause across revoke and re-assign, while
            # its new state here starts unpaused: make the two agree.
            consumer.resume(tps)
        loop = self._loop
        assert loop is not None
        # Scheduled before this consume() returns, so the states exist before any of
        # the partitions' records are dispatched; no waiting on the loop needed.
        loop.call_soon_threadsafe(self._assigned, tps)

    def _on_revoke(self, tps: list[TP]) -> None:
        self.metrics.rebalance("revoke")
        offsets = self._on_loop(self._revoked(tps), self.settings.revoke_timeout + 5.0)
        consumer = self._consumer
        if consumer is None:
            return
        consumer.resume(tps)
        if offsets:
            try:
                # While stopping, the final commit already ran; do not block close().
                consumer.commit(offsets, asynchronous=self._stopping)
            except KafkaError as exc:
                self.metrics.commit_failure()
                log.warning("commit on revoke failed", error=str(exc))

    def _on_lost(self, tps: list[TP]) -> None:
        self.metrics.rebalance("lost")
        loop = self._loop
        assert loop is not None
        loop.call_soon_threadsafe(self._lost, tps)

    def _on_loop(self, coro: Any, timeout: float) -> Any:
        loop = self._loop
        assert loop is not None
        fut = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return fut.result(timeout)
        except Exception as exc:
            # Not cancelled: the coroutine still runs when the loop gets to it (and
            # releases the partitions' state); only this callback's commit is skipped,
            # which is safe (the new owner re-runs from the last commit).
            log.error("rebalance handling timed out or failed", error=repr(exc))
            return None

    def _assigned(self, tps: list[TP]) -> None:
        for tp in tps:
            self._states[tp] = PartitionState(*tp)
        self.events.append(("assign", list(tps)))
        self.health.joined()  # ops hook: /readyz membership
        if tps:  # cooperative rebalances also report empty increments
            log.info("partitions assigned", partitions=_fmt(tps))

    async def _revoked(self, tps: list[TP]) -> dict[TP, int]:
        states = [s for tp in tps if (s := self._states.get(tp)) is not None]
        for state in states:
            state.revoked = True
        # On close, stop() has already spent the drain timeout: waiting revoke_timeout
        # again would overrun the shutdown bound and outlive the session.
        wait = 0.0 if self._stopping else self.settings.revoke_timeout
        deadline = time.monotonic() + wait
        await self._drain_until(lambda: all(s.in_flight == 0 for s in states), deadline, poll=False)
        offsets: dict[TP, int] = {}
        for state in states:
            point = state.tracker.committable()
            if point is not None:
                offsets[state.tp] = point
            if state.in_flight:
                log.warning(
                    "revoke timeout: tasks still running",
                    partition=state.tp,
                    running=state.in_flight,
                )
            self._states.pop(state.tp, None)
        self.events.append(("revoke", list(tps)))
        log.info("partitions revoked", partitions=_fmt(tps), committed=len(offsets))
        return offsets

    def _lost(self, tps: list[TP]) -> None:
        for tp in tps:
            state = self._states.pop(tp, None)
            if state is not None:
                state.revoked = True
        self.events.append(("lost", list(tps)))
        self.health.left("partitions lost, rejoining the group")  # ops hook: /readyz
        log.warning("partitions lost", partitions=_fmt(tps))


async def _close_bounded(consumer: KafkaConsumer, seconds: float) -> bool:
    """Close the consumer on a daemon thread; False if it did not finish in time.

    librdkafka's close has no timeout of its own and waits for an unreachable
    coordinator; a daemon thread lets the process exit regardless. It is not the
    consumer thread, which may still be stuck in a commit that close aborts.
    """
    done = threading.Event()

    def run() -> None:
        try:
            consumer.close()
        finally:
            done.set()

    threading.Thread(target=run, name="ktf-consumer-close", daemon=True).start()
    deadline = time.monotonic() + seconds
    while not done.is_set():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.02)
    return True


def _fmt(tps: Sequence[TP]) -> str:
    return ",".join(f"{t}[{p}]" for t, p in sorted(tps))


def build_codecs(
    registry: HandlerRegistry, store: SchemaStore, settings: Settings
) -> dict[str, TopicCodecs]:
    """Each handler's task and result codecs, in its wire format."""
    codecs: dict[str, TopicCodecs] = {}
    for spec in registry.specs:
        extra: dict[str, Any] = {}
        if spec.wire_format == "confluent":
            conf = settings.schema_registry()
            if conf is None:
                raise ConfigError(
                    f"handler {spec.name} (topic {spec.topic!r}) uses wire_format "
                    "'confluent' but schema_registry_url is not set (KTF_SCHEMA_REGISTRY_URL)"
                )
            extra = {"registry": conf, "subject": f"{spec.topic}-value"}
        task_codec = store.codec(spec.schema, wire=spec.wire_format, **extra)  # type: ignore[arg-type]
        result_codec = None
        if spec.result_schema is not None:
            if extra:
                reply = spec.default_reply_topic or spec.topic
                extra = dict(extra, subject=f"{reply}-value")
            result_codec = store.codec(spec.result_schema, wire=spec.wire_format, **extra)  # type: ignore[arg-type]
        codecs[spec.topic] = TopicCodecs(task_codec, result_codec)
    return codecs
