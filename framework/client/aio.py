"""The asyncio producer SDK: submit tasks, call them and await the reply, cancel them.

    async with TaskClient(settings, handlers=("handlers.examples",)) as client:
        task_id = await client.submit("tasks.word-count", {"text": "hello world"})
        reply = await client.call("tasks.word-count", {"text": "a b a"}, timeout=10)
        print(reply.result)            # {'words': 3, 'distinct': 2, 'top': ['a', 'b']}

See docs/producing.md for the headers it writes and the reply-topic design.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import structlog
from confluent_kafka import KafkaException

from framework import headers as h
from framework.client.errors import CallCancelled, CallExpired, CallTimeout, TaskFailed
from framework.client.replies import Reply, ReplyListener, to_reply
from framework.client.tasks import Deadline, deadline_ms, task_headers
from framework.client.topics import CodecCache, TopicSchema, topic_schemas
from framework.config import Settings
from framework.errors import ConfigError, DecodeError, EncodeError, KafkaError
from framework.headers import new_id
from framework.kafka.admin import KafkaAdmin, TopicSpec
from framework.kafka.producer import KafkaProducer
from framework.registry import HandlerRegistry
from framework.routing.control import send_cancel
from framework.scheduling.delay import not_before_ms
from framework.serde import SchemaStore, TopicCodecs

log = structlog.get_logger("framework.client")

REPLY_TOPIC_PREFIX = "ktf.replies."
#: Replies are read within seconds; an hour of retention is ample and keeps the
#: shared per-application reply topic small.
REPLY_RETENTION_MS = 3_600_000
_TOPIC_CHARS = re.compile(r"[^a-zA-Z0-9._-]")
# Yield to the loop while queueing a large batch so other coroutines keep running.
_YIELD_EVERY = 5_000

Key = str | bytes | None


def default_reply_topic(client_id: str) -> str:
    """``ktf.replies.<client id>``, with characters Kafka forbids replaced by ``-``."""
    return (REPLY_TOPIC_PREFIX + _TOPIC_CHARS.sub("-", client_id))[:249]


def _key(key: Key) -> bytes | None:
    return key.encode("utf-8") if isinstance(key, str) else key


class TaskClient:
    """Produce tasks from asyncio code. No network I/O until :meth:`start`.

    Topic -> schema: ``handlers`` (module paths or a :class:`HandlerRegistry`: each
    handler's topic, schema, result schema and wire format) and/or ``schemas``
    (``{topic: "Full.Name"}`` or ``{topic: TopicSchema(...)}``; wins over handlers).
    ``store`` defaults to ``SchemaStore.load([settings.schemas_dir])``; ``registry`` is
    the Schema Registry client or config for ``confluent`` topics.

    Replies (:meth:`call`): ``reply_topic`` defaults to ``ktf.replies.<client_id>``,
    created at the first call with ``reply_partitions`` partitions and one hour of
    retention unless ``create_reply_topic=False``. Several processes with the same
    ``client_id`` may share it: each only takes the replies of its own calls.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        schemas: Mapping[str, str | TopicSchema] | None = None,
        handlers: Sequence[str] | HandlerRegistry | None = None,
        store: SchemaStore | None = None,
        registry: Any = None,
        reply_topic: str | None = None,
        reply_partitions: int = 3,
        create_reply_topic: bool = True,
        timeout: float = 30.0,
    ) -> None:
        self.settings = settings or Settings.load()
        self._schemas = schemas
        self._handlers = handlers
        self._store = store
        self._registry = registry
        self.reply_topic = reply_topic or default_reply_topic(self.settings.client_id)
        self._reply_partitions = reply_partitions
        self._create_reply_topic = create_reply_topic
        #: bound on start-up metadata requests and on close()'s final flush
        self.timeout = timeout
        self._codecs: CodecCache | None = None
        self._producer: KafkaProducer | None = None
        self._listener: ReplyListener | None = None
        self._listener_lock = asyncio.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._topics: set[str] = set()

    # -- lifecycle -------------------------------------------------------------

    async def __aenter__(self) -> TaskClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self, *, replies: bool = False) -> None:
        """Load schemas and handlers and create the producer.

        The reply consumer starts at the first :meth:`call` (or here with
        ``replies=True``), before that call's task is sent.
        """
        if self._producer is None:
            self._loop = asyncio.get_running_loop()
            store = self._store or SchemaStore.load([self.settings.schemas_dir])
            topics = topic_schemas(self._schemas, self._handlers)
            self._codecs = CodecCache(store, topics, registry=self._registry)
            # One metadata round trip: an absent broker is one clear error within
            # `timeout`, not five minutes of retries inside librdkafka.
            self._topics = await loop_run(self._list_topics)
            producer = KafkaProducer(self.settings)
            producer.start()
            self._producer = producer
        if replies:
            await self._replies()

    async def close(self) -> None:
        """Stop following replies (waiting calls fail), flush and close the producer."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        if self._listener is not None:
            listener, self._listener = self._listener, None
            await loop.run_in_executor(
                None, listener.stop, lambda: KafkaError("the TaskClient was closed")
            )
        if self._producer is not None:
            producer, self._producer = self._producer, None
            remaining = await loop.run_in_executor(None, producer.close, self.timeout)
            if remaining:
                raise KafkaError(
                    f"{remaining} task record(s) were not delivered within {self.timeout}s"
                )

    # -- encoding --------------------------------------------------------------

    def codecs(self, topic: str) -> TopicCodecs:
        """The task (and result) codecs of ``topic``; ConfigError if unknown."""
        if self._codecs is None:
            raise ConfigError("TaskClient is not started: use 'async with' or await start()")
        return self._codecs.get(topic)

    def validate(self, topic: str, payload: Any) -> None:
        """Raise :class:`EncodeError` naming the first field of ``payload`` that does
        not match ``topic``'s schema."""
        self.codecs(topic).task.validate(payload)

    def encode(self, topic: str, payload: Any) -> bytes:
        """Validate ``payload`` and return its bytes in ``topic``'s wire format."""
        return self.codecs(topic).task.encode(payload)

    # -- submitting ------------------------------------------------------------

    def _producer_or_fail(self) -> KafkaProducer:
        if self._producer is None or self._closed:
            raise KafkaError("TaskClient is not started or already closed")
        return self._producer

    async def submit(
        self,
        topic: str,
        payload: Any,
        *,
        key: Key = None,
        task_id: str | None = None,
        deadline: Deadline | None = None,
        headers: Mapping[str, str] | None = None,
        delay: float | dt.timedelta | None = None,
        run_at: dt.datetime | None = None,
    ) -> str:
        """Validate, encode and produce one task; return its id once the broker has it.

        ``task_id`` defaults to 32 random hex digits; ``deadline`` is a datetime,
        seconds from now (float or timedelta) or epoch ms (int); ``headers`` are
        extra string headers (a ``traceparent`` among them continues that trace).
        ``delay`` (seconds or a timedelta, up to 7 days) or ``run_at`` (a datetime)
        delays the task: it is written with ``ktf-not-before`` and waits in the
        topic's delay tiers, not holding up the topic's other tasks (docs/scheduling.md).
        Raises :class:`EncodeError` (nothing sent) or :class:`KafkaError`.
        """
        data = self.encode(topic, payload)
        tid = task_id or new_id()
        dl = None if deadline is None else deadline_ms(deadline)
        nb = not_before_ms(delay, run_at)
        hdrs = task_headers(tid, deadline=dl, extra=headers, not_before=nb)
        await self._send(topic, data, _key(key), hdrs)
        return tid

    async def submit_many(
        self,
        topic: str,
        payloads: Iterable[Any],
        *,
        keys: Iterable[Key] | None = None,
        deadline: Deadline | None = None,
        headers: Mapping[str, str] | None = None,
        delay: float | dt.timedelta | None = None,
        run_at: dt.datetime | None = None,
    ) -> list[str]:
        """Submit a batch: validate all first (nothing is sent if one is invalid; the
        error names its index and field), produce all, wait for all acks once.
        ``delay``/``run_at`` as in :meth:`submit`, the same for the whole batch."""
        codec = self.codecs(topic).task
        encoded: list[bytes] = []
        for index, payload in enumerate(payloads):
            try:
                encoded.append(codec.encode(payload))
            except EncodeError as exc:
                raise EncodeError(f"payload {index}: {exc}") from exc
        key_list = [None] * len(encoded) if keys is None else [_key(k) for k in keys]
        if len(key_list) != len(encoded):
            raise ConfigError(f"{len(key_list)} keys for {len(encoded)} payloads")
        dl = None if deadline is None else deadline_ms(deadline)
        nb = not_before_ms(delay, run_at)
        await self._require_topic(topic)
        producer = self._producer_or_fail()
        raw = producer.raw
        # One trace for the batch (it is one operation), one span per task; the
        # headers every task shares are built once.
        trace_id = new_id()
        common = task_headers("", deadline=dl, extra=headers, not_before=nb)
        common = [(n, v) for n, v in common if n not in (h.TASK_ID, h.TRACEPARENT)]
        traced = headers is not None and h.TRACEPARENT in headers
        failures: list[Any] = []

        def report(err: Any, _msg: Any) -> None:
            # Runs for every record on the poll thread: keep it minimal.
            if err is not None:
                failures.append(err)

        ids: list[str] = []
        for index, (data, k) in enumerate(zip(encoded, key_list, strict=True)):
            rand = os.urandom(24).hex()
            tid = rand[:32]
            ids.append(tid)
            hdrs: list[tuple[str, str | bytes | None]] = [(h.TASK_ID, tid.encode())]
            if not traced:
                hdrs.append((h.TRACEPARENT, f"00-{trace_id}-{rand[32:]}-01".encode()))
            hdrs.extend(common)
            try:
                raw.produce(topic, data, k, headers=hdrs, on_delivery=report)
            except BufferError:
                # Queue full: the slow path waits (bounded) for room.
                producer.produce(
                    topic,
                    data,
                    key=k,
                    headers=hdrs,  # type: ignore[arg-type]
                    on_delivery=report,
                )
            except KafkaException as exc:
                raise KafkaError(f"produce to {topic!r} failed: {exc}") from exc
            if index % _YIELD_EVERY == _YIELD_EVERY - 1:
                await asyncio.sleep(0)
        # One flush for the batch (it also waits for records other coroutines queued).
        left = await asyncio.get_running_loop().run_in_executor(None, producer.flush, self.timeout)
        if left:
            raise KafkaError(f"{left} record(s) to {topic!r} not delivered within {self.timeout}s")
        if failures:
            raise KafkaError(
                f"{len(failures)} task record(s) to {topic!r} not delivered: {failures[0]}"
            )
        return ids

    def _list_topics(self) -> set[str]:
        return set(KafkaAdmin(self.settings).topic_partitions(self.timeout))

    async def _require_topic(self, topic: str) -> None:
        """Fail at once for a topic that does not exist (auto-creation is off)."""
        if topic in self._topics:
            return
        self._topics = await loop_run(self._list_topics)
        if topic not in self._topics:
            raise KafkaError(
                f"topic {topic!r} does not exist on {self.settings.bootstrap_servers} "
                "(create it with `ktf topics ensure --handlers ...`)"
            )

    async def _send(
        self, topic: str, data: bytes, key: bytes | None, hdrs: list[tuple[str, bytes]]
    ) -> None:
        await self._require_topic(topic)
        await self._producer_or_fail().send(topic, data, key=key, headers=hdrs)

    # -- request / reply -------------------------------------------------------

    async def _replies(self) -> ReplyListener:
        if self._listener is not None:
            return self._listener
        async with self._listener_lock:
            # Another call may have started it while this one waited for the lock.
            started = self._current_listener()
            if started is not None:
                return started
            self._producer_or_fail()
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, self._prepare_reply_topic)
            conf = self.settings.librdkafka("consumer")
            conf.update(
                {
                    # Never joined: partitions are assigned and nothing is committed.
                    "group.id": f"{self.settings.client_id}-replies",
                    "enable.auto.commit": False,
                    # Replies are latency-sensitive and small.
                    "fetch.wait.max.ms": 10,
                }
            )
            listener = ReplyListener(conf, self.reply_topic)
            await loop.run_in_executor(None, listener.start, loop, self.timeout)
            self._listener = listener
            log.debug("following replies", topic=self.reply_topic)
            return listener

    def _current_listener(self) -> ReplyListener | None:
        return self._listener

    def _prepare_reply_topic(self) -> None:
        admin = KafkaAdmin(self.settings)
        if self._create_reply_topic:
            spec = TopicSpec(
                self.reply_topic,
                self._reply_partitions,
                self.settings.topic_replication,
                {"retention.ms": str(REPLY_RETENTION_MS)},
            )
            admin.ensure_topics([spec], timeout=self.timeout)
        elif self.reply_topic not in admin.topic_partitions(self.timeout):
            raise ConfigError(
                f"reply topic {self.reply_topic!r} does not exist (create it, or let the "
                "client create it: create_reply_topic=True)"
            )

    async def call(
        self,
        topic: str,
        payload: Any,
        *,
        # A per-call timeout is the API (it also sets the task's default deadline).
        timeout: float = 30.0,  # noqa: ASYNC109
        key: Key = None,
        task_id: str | None = None,
        deadline: Deadline | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """Submit a task with ``ktf-reply-to`` and await its reply.

        Returns the :class:`Reply` of an ``ok`` task (``reply.result`` decoded with the
        result schema when known). Raises :class:`CallTimeout` after ``timeout``
        seconds, :class:`TaskFailed`, :class:`CallExpired` or :class:`CallCancelled`.
        The task's deadline defaults to the call's timeout, so a worker does not
        start a task whose caller has given up.
        """
        codecs = self.codecs(topic)
        data = codecs.task.encode(payload)
        listener = await self._replies()
        tid = task_id or new_id()
        corr = new_id()
        dl = deadline_ms(deadline) if deadline is not None else int((time.time() + timeout) * 1000)
        hdrs = task_headers(
            tid, deadline=dl, reply_to=self.reply_topic, correlation_id=corr, extra=headers
        )
        fut = listener.expect(corr)
        try:
            async with asyncio.timeout(timeout):
                await self._send(topic, data, _key(key), hdrs)
                msg = await fut
        except TimeoutError:
            raise CallTimeout(
                f"no reply for task {tid} on {topic!r} within {timeout}s "
                f"(reply topic {self.reply_topic!r})",
                task_id=tid,
            ) from None
        finally:
            listener.forget(corr)
        return _outcome(msg, codecs, tid)

    async def cancel(self, task_id: str, reason: str | None = None) -> None:
        """Ask the workers to cancel ``task_id`` through ``ktf.control``; returns once
        the command is on the broker. A call waiting for it gets :class:`CallCancelled`."""
        producer = self._producer_or_fail()
        await asyncio.get_running_loop().run_in_executor(
            None, functools.partial(send_cancel, producer, task_id, reason, timeout=self.timeout)
        )

    @property
    def stats(self) -> dict[str, int]:
        """``pending_calls`` and ``ignored_replies`` (replies that were not ours)."""
        listener = self._listener
        return {
            "pending_calls": listener.pending if listener else 0,
            "ignored_replies": listener.ignored if listener else 0,
        }


def _outcome(msg: Any, codecs: TopicCodecs, task_id: str) -> Reply:
    status = h.to_dict(msg.headers()).get(h.STATUS, "")
    value = msg.value()
    result = None
    if status == h.STATUS_OK and value is not None and codecs.result is not None:
        try:
            result = codecs.result.decode(value)
        except DecodeError as exc:
            raise DecodeError(
                f"reply to task {task_id} at {msg.topic()}[{msg.partition()}]@{msg.offset()}: {exc}"
            ) from exc
    reply = to_reply(msg, result)
    if status == h.STATUS_OK:
        return reply
    etype = reply.error_type or ""
    emsg = reply.error_message or ""
    detail = f"{etype}: {emsg}" if etype else emsg or "no error details"
    if status == h.STATUS_EXPIRED:
        raise CallExpired(
            f"task {task_id} expired: {emsg or 'deadline passed'}", task_id=task_id, reply=reply
        )
    if status == h.STATUS_CANCELLED:
        raise CallCancelled(
            f"task {task_id} was cancelled: {emsg or 'cancelled'}", task_id=task_id, reply=reply
        )
    if status != h.STATUS_ERROR:
        detail = f"unknown reply status {status!r}; {detail}"
    raise TaskFailed(
        f"task {task_id} failed: {detail}",
        task_id=task_id,
        reply=reply,
        error_type=etype,
        error_message=emsg,
        error_stack=reply.headers.get(h.ERROR_STACK, ""),
    )


async def loop_run(fn: Any, *args: Any) -> Any:
    """Run a blocking call on the default executor."""
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)
