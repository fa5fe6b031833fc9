"""The scheduler: one leader per worker group fires each schedule's windows once.

Leadership (see :mod:`framework.scheduling.election`) makes a worker a candidate.
It becomes the leader by

1. ``init_transactions()`` of the transactional producer ``ktf-scheduler-<group>``:
   the broker bumps the producer epoch and aborts the previous leader's open
   transaction; from then on every transaction of the old leader fails (fenced);
2. reading ``ktf.schedules`` to its end with read_committed: the last window each
   schedule fired, as committed by any earlier leader;
3. committing the leader record with epoch = previous epoch + 1.

Each tick fires the windows that are due in ONE transaction holding the task
records and the new state records, so a window's task exists exactly when its
state says it was fired: a leader killed mid-transaction leaves nothing visible, a
new leader resumes after the last committed window, and a stale (stopped and
resumed) leader's transaction is rejected by the broker. Consumers of the task
topics read committed records only (librdkafka's default), so an aborted fire
never runs.

Blocking Kafka calls run on the scheduler's own thread; payload functions run on
the event loop (keep them quick, or make them ``async``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import structlog
from prometheus_client import CollectorRegistry

from framework.client.tasks import task_headers
from framework.config import Settings
from framework.errors import ConfigError, KafkaError
from framework.kafka.admin import KafkaAdmin, TopicSpec
from framework.kafka.transactional import Fenced, TransactionalProducer
from framework.scheduling.election import LeaderElection
from framework.scheduling.metrics import (
    MISSED_CATCH_UP,
    MISSED_MAX_INSTANCES,
    MISSED_PAYLOAD,
    SchedulerMetrics,
)
from framework.scheduling.runs import RUNS_TOPIC, RUNS_TOPIC_CONFIG, RunTracker
from framework.scheduling.schedule import MAX_WINDOWS_PER_TICK, Schedule
from framework.scheduling.state import (
    KIND_LEADER,
    KIND_SCHEDULE,
    LEADER_TOPIC,
    LEADER_TOPIC_CONFIG,
    STATE_TOPIC,
    STATE_TOPIC_CONFIG,
    WindowState,
    encode_value,
    read_state,
    state_key,
    transactional_id,
)
from framework.serde import TopicCodecs

log = structlog.get_logger("framework.scheduling")

#: Header naming the schedule that produced a task, and the window's due time (ms).
SCHEDULE_HEADER = "ktf-schedule"
SCHEDULE_DUE_HEADER = "ktf-schedule-due"
_IDLE_POLL = 0.2
_RETRY_AFTER = 1.0
_TXN_TIMEOUT = 30.0


@dataclass
class _Record:
    topic: str
    value: bytes | None
    key: bytes | None
    headers: list[tuple[str, bytes]]


def now_ms() -> int:
    return int(time.time() * 1000)


def default_member() -> str:
    return f"{socket.gethostname()}/{os.getpid()}"


class Scheduler:
    """Runs a worker group's schedules on its elected leader. ``await start()`` /
    ``await stop()``; nothing touches the network before ``start``."""

    def __init__(
        self,
        settings: Settings,
        schedules: Sequence[Schedule],
        codecs: Mapping[str, TopicCodecs],
        *,
        registry: CollectorRegistry | None = None,
        member: str | None = None,
    ) -> None:
        self.settings = settings
        self.group = settings.group_id
        self.member = member or default_member()
        self.schedules = list(schedules)
        for schedule in self.schedules:
            if schedule.topic not in codecs:
                raise ConfigError(
                    f"schedule {schedule.name!r} sends to topic {schedule.topic!r}, which has no "
                    f"handler in this worker (handlers here: {', '.join(sorted(codecs)) or 'none'})"
                )
        self._codecs = codecs
        self.metrics = SchedulerMetrics(registry, self.group)
        self._election = LeaderElection(settings, self.group, self.member)
        self._runs = RunTracker(
            settings, needed=any(s.max_instances is not None for s in self.schedules)
        )
        self._executor: ThreadPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None
        self._producer: TransactionalProducer | None = None
        self._windows: dict[str, WindowState] = {}
        self._stopping = False
        self._fenced_at = -1
        self.leading = False
        self.epoch = 0
        #: (schedule, due ms, task id) of every window this process fired, for tests
        self.fired: list[tuple[str, int, str]] = []

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ktf-scheduler")
        await self._call(self._ensure_topics)
        await self._call(self._election.start)
        self._task = asyncio.create_task(self._run(), name="ktf-scheduler")
        log.info(
            "scheduler started",
            group=self.group,
            schedules=[s.name for s in self.schedules],
            session_timeout_ms=self.settings.leader_session_timeout_ms,
        )

    async def stop(self) -> None:
        """Stop firing and leave the leader group, so another worker leads at once."""
        self._stopping = True
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
            self._task = None
        if self._executor is not None:
            if self.leading:
                self._step_down("worker stopping")
            await self._call(self._election.close)
            await self._call(self._runs.close)
            self._executor.shutdown(wait=False)
            self._executor = None

    async def _call(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _ensure_topics(self) -> None:
        KafkaAdmin(self.settings).ensure_topics(
            scheduler_topics(self.settings.topic_replication), timeout=30.0
        )

    # -- the loop -------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self._call(self._election.poll, self._wait())
                owned = self._election.owned
                if owned and not self.leading and self._election.changes != self._fenced_at:
                    await self._take_over()
                elif not owned and self.leading:
                    self._step_down("the leader partition was revoked")
                if self.leading and not self._stopping:
                    await self._tick()
            except Fenced as exc:
                self._fenced_at = self._election.changes
                self._step_down(f"fenced by a newer leader: {exc}")
            except Exception as exc:
                log.warning("scheduler step failed; retrying", error=str(exc), group=self.group)
                if self.leading:
                    # State is re-read from the topic on the next take-over.
                    self._step_down(f"error: {exc}")
                await asyncio.sleep(_RETRY_AFTER)

    def _wait(self) -> float:
        if not self.leading:
            return _IDLE_POLL
        now = now_ms()
        soonest = min(
            (self._fire_at(s) for s in self.schedules),
            default=now + int(_IDLE_POLL * 1000),
        )
        return max(0.0, min(_IDLE_POLL, (soonest - now) / 1000.0))

    def _fire_at(self, schedule: Schedule) -> int:
        due = schedule.next_due(self._windows[schedule.name].last_due_ms)
        return due + schedule.jitter_ms(due)

    # -- leadership -----------------------------------------------------------------

    async def _take_over(self) -> None:
        changes = self._election.changes
        producer = TransactionalProducer(self.settings, transactional_id(self.group))
        self._producer = producer
        await self._call(producer.init, _TXN_TIMEOUT)  # fences the previous leader
        state = await self._call(read_state, self.settings, self.group, _TXN_TIMEOUT)
        if self._election.changes != changes or not self._election.owned:
            self._close_producer()
            return  # lost the partition while taking over: the next owner does it
        previous = state.leader
        epoch = (previous.epoch if previous is not None else 0) + 1
        record = _Record(
            STATE_TOPIC,
            encode_value({"epoch": epoch, "leader": self.member, "since_ms": now_ms()}),
            state_key(self.group, KIND_LEADER),
            [],
        )
        await self._call(self._commit, [record])
        start = now_ms()
        self._windows = {}
        for schedule in self.schedules:
            found = state.windows.get(schedule.name)
            if found is None:
                # A new schedule starts now: windows of the last `grace` still fire.
                found = WindowState(last_due_ms=start - int(schedule.grace * 1000))
            self._windows[schedule.name] = found
        await self._call(self._runs.follow, self._windows)
        self.epoch = epoch
        self.leading = True
        self.metrics.leader.set(1)
        self.metrics.epoch.set(epoch)
        log.info(
            "became scheduler leader",
            group=self.group,
            epoch=epoch,
            previous_leader=previous.leader if previous else None,
            resumed={n: w.last_due_ms for n, w in self._windows.items()},
        )

    def _step_down(self, reason: str) -> None:
        was = self.leading
        self.leading = False
        self.metrics.leader.set(0)
        self.metrics.epoch.set(0)
        for schedule in self.schedules:
            self.metrics.lag.labels(schedule.name).set(0)
        self._close_producer()
        if was:
            log.warning("no longer the scheduler leader", group=self.group, reason=reason)

    def _close_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            producer.close()

    def _commit(self, records: list[_Record]) -> None:
        """One transaction with every record (scheduler thread)."""
        producer = self._producer
        if producer is None:
            raise KafkaError("no transactional producer: not the leader")
        producer.begin()
        for r in records:
            producer.produce(r.topic, r.value, key=r.key, headers=r.headers)
        producer.commit(_TXN_TIMEOUT)

    # -- firing ---------------------------------------------------------------------

    async def _tick(self) -> None:
        now = now_ms()
        finished = await self._call(self._runs.drain) if self._runs.needed else set()
        records: list[_Record] = []
        updates: dict[str, WindowState] = {}
        fired: list[tuple[Schedule, int, str, int]] = []
        missed: list[tuple[Schedule, str, int]] = []
        for schedule in self.schedules:
            current = self._windows[schedule.name]
            running = {k: v for k, v in current.running.items() if k not in finished}
            ready = [
                d
                for d in schedule.due_between(current.last_due_ms, now, MAX_WINDOWS_PER_TICK)
                if d + schedule.jitter_ms(d) <= now
            ]
            if not ready:
                self._set_lag(schedule, current, now)
                if len(running) != len(current.running):
                    updates[schedule.name] = _replace(current, running=running)
                continue
            grace = int(schedule.grace * 1000)
            if schedule.catch_up == "all":
                chosen = ready
            elif schedule.catch_up == "latest":
                chosen = ready[-1:]
            else:
                chosen = [d for d in ready if now - d - schedule.jitter_ms(d) <= grace]
            n_missed = len(ready) - len(chosen)
            if n_missed:
                missed.append((schedule, MISSED_CATCH_UP, n_missed))
            last_id = current.task_id
            fired_at = current.fired_at_ms
            for due in chosen:
                if schedule.max_instances is not None and len(running) >= schedule.max_instances:
                    missed.append((schedule, MISSED_MAX_INSTANCES, 1))
                    n_missed += 1
                    continue
                record = await self._task_record(schedule, due)
                if record is None:
                    missed.append((schedule, MISSED_PAYLOAD, 1))
                    n_missed += 1
                    continue
                records.append(record)
                last_id, fired_at = schedule.task_id(due), now
                if schedule.max_instances is not None:
                    running[last_id] = now
                fired.append((schedule, due, last_id, now - due - schedule.jitter_ms(due)))
            updates[schedule.name] = WindowState(
                last_due_ms=ready[-1],
                task_id=last_id,
                fired_at_ms=fired_at,
                epoch=self.epoch,
                leader=self.member,
                missed=current.missed + n_missed,
                running=running,
            )
        if not updates:
            return
        for name, window in updates.items():
            records.append(
                _Record(
                    STATE_TOPIC,
                    encode_value(window.to_json()),
                    state_key(self.group, KIND_SCHEDULE, name),
                    [],
                )
            )
        await self._call(self._commit, records)
        self._windows.update(updates)
        for schedule, due, task_id, late in fired:
            self.fired.append((schedule.name, due, task_id))
            self.metrics.fired.labels(schedule.name).inc()
            self.metrics.lag.labels(schedule.name).set(max(0, late) / 1000.0)
            log.info(
                "schedule fired",
                schedule=schedule.name,
                task_id=task_id,
                topic=schedule.topic,
                late_ms=late,
                epoch=self.epoch,
            )
        for schedule, reason, count in missed:
            self.metrics.missed.labels(schedule.name, reason).inc(count)
            log.warning(
                "schedule windows not fired",
                schedule=schedule.name,
                reason=reason,
                windows=count,
                catch_up=schedule.catch_up,
            )

    def _set_lag(self, schedule: Schedule, window: WindowState, now: int) -> None:
        waiting = now - self._fire_at(schedule)
        if waiting > 0:
            self.metrics.lag.labels(schedule.name).set(waiting / 1000.0)

    async def _task_record(self, schedule: Schedule, due: int) -> _Record | None:
        try:
            payload = await schedule.build_payload(due)
            value = self._codecs[schedule.topic].task.encode(payload)
        except Exception as exc:
            log.error(
                "schedule payload failed; window skipped",
                schedule=schedule.name,
                due_ms=due,
                error=f"{type(exc).__name__}: {exc}",
            )
            return None
        return build_record(schedule, due, value, reply_to=self._runs.reply_to(schedule))


def scheduler_topics(replication: int) -> list[TopicSpec]:
    """The topics every scheduler needs (``ktf topics ensure`` creates them too)."""
    return [
        TopicSpec(LEADER_TOPIC, 1, replication, LEADER_TOPIC_CONFIG),
        TopicSpec(STATE_TOPIC, 1, replication, STATE_TOPIC_CONFIG),
        TopicSpec(RUNS_TOPIC, 1, replication, RUNS_TOPIC_CONFIG),
    ]


def build_record(
    schedule: Schedule,
    due: int,
    value: bytes | None,
    *,
    task_id: str | None = None,
    reply_to: str | None = None,
) -> _Record:
    """The task record of one window (also used by ``ktf schedules run``)."""
    extra = dict(schedule.headers)
    extra[SCHEDULE_HEADER] = schedule.name
    extra[SCHEDULE_DUE_HEADER] = str(due)
    hdrs = task_headers(task_id or schedule.task_id(due), reply_to=reply_to, extra=extra)
    key = schedule.key.encode() if schedule.key is not None else None
    return _Record(schedule.topic, value, key, hdrs)


def _replace(window: WindowState, **changes: Any) -> WindowState:
    data = window.to_json()
    data.update(changes)
    return WindowState(**data)
