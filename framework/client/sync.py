"""A synchronous facade over :class:`TaskClient` for code without an event loop.

It runs a private event loop on a daemon thread and forwards each call to it, so a
Flask view or a script can ``submit``/``call`` while the client's delivery reports
and reply consumer keep running in the background. Thread-safe: many threads may
call one instance concurrently (their calls share one reply consumer).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from framework.client.aio import Key, TaskClient
from framework.client.replies import Reply
from framework.client.tasks import Deadline
from framework.client.topics import TopicSchema
from framework.config import Settings
from framework.errors import KafkaError
from framework.registry import HandlerRegistry
from framework.serde import SchemaStore

T = TypeVar("T")

# Extra seconds a blocking wrapper waits beyond the operation's own timeout, so the
# async side reports its own precise error first.
_GRACE = 5.0


class SyncTaskClient:
    """Same arguments and methods as :class:`TaskClient`, blocking.

    ``with SyncTaskClient(settings, handlers=("handlers.examples",)) as client: ...``
    or ``start()`` / ``close()``. No network I/O in the constructor.
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
        self._client = TaskClient(
            settings,
            schemas=schemas,
            handlers=handlers,
            store=store,
            registry=registry,
            reply_topic=reply_topic,
            reply_partitions=reply_partitions,
            create_reply_topic=create_reply_topic,
            timeout=timeout,
        )
        self._timeout = timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def client(self) -> TaskClient:
        """The underlying async client (its methods must run on :attr:`loop`)."""
        return self._client

    @property
    def reply_topic(self) -> str:
        return self._client.reply_topic

    def __enter__(self) -> SyncTaskClient:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self, *, replies: bool = False) -> None:
        """Start the private loop thread and the client."""
        if self._loop is None:
            loop = asyncio.new_event_loop()
            self._thread = threading.Thread(
                target=loop.run_forever, name="ktf-sync-client", daemon=True
            )
            self._thread.start()
            self._loop = loop
        self._run(self._client.start(replies=replies), self._timeout + _GRACE)

    def close(self) -> None:
        """Close the client, then stop and close the private loop."""
        loop = self._loop
        if loop is None:
            return
        try:
            self._run(self._client.close(), self._timeout + _GRACE)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join(timeout=5.0)
            loop.close()
            self._loop = None
            self._thread = None

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        if self._loop is None:
            coro.close()
            raise KafkaError("SyncTaskClient is not started: use 'with' or start()")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise KafkaError(f"client operation did not finish within {timeout:.0f}s") from None

    def validate(self, topic: str, payload: Any) -> None:
        """Raise :class:`EncodeError` naming the first offending field (no I/O)."""
        self._client.validate(topic, payload)

    def submit(
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
        """See :meth:`TaskClient.submit`; blocks until the broker has the task."""
        coro = self._client.submit(
            topic,
            payload,
            key=key,
            task_id=task_id,
            deadline=deadline,
            headers=headers,
            delay=delay,
            run_at=run_at,
        )
        return self._run(coro, self._timeout + _GRACE)

    def submit_many(
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
        """See :meth:`TaskClient.submit_many`."""
        items = list(payloads)
        coro = self._client.submit_many(
            topic,
            items,
            keys=keys,
            deadline=deadline,
            headers=headers,
            delay=delay,
            run_at=run_at,
        )
        # Queueing is bounded by the producer's queue-full timeout per record batch.
        return self._run(coro, self._timeout + _GRACE + len(items) / 1_000)

    def call(
        self,
        topic: str,
        payload: Any,
        *,
        timeout: float = 30.0,
        key: Key = None,
        task_id: str | None = None,
        deadline: Deadline | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """See :meth:`TaskClient.call`."""
        coro = self._client.call(
            topic,
            payload,
            timeout=timeout,
            key=key,
            task_id=task_id,
            deadline=deadline,
            headers=headers,
        )
        # The first call also creates and assigns the reply topic.
        return self._run(coro, timeout + self._timeout + _GRACE)

    def cancel(self, task_id: str, reason: str | None = None) -> None:
        """See :meth:`TaskClient.cancel`."""
        self._run(self._client.cancel(task_id, reason), self._timeout + _GRACE)
