"""A thin, blocking wrapper over a transactional ``confluent_kafka.Producer``.

``init()`` registers the ``transactional.id`` with the transaction coordinator and
bumps its producer epoch: any other producer still using that id is fenced (its
next transaction fails with :class:`Fenced`). Every method blocks; callers run
them off the event loop.
"""

from __future__ import annotations

import contextlib
from typing import Any

import confluent_kafka
from confluent_kafka import KafkaException

from framework.config import Settings
from framework.errors import KafkaError


class Fenced(KafkaError):
    """Another producer with the same ``transactional.id`` took over: this one is done."""


class TransactionalProducer:
    """One transaction at a time; no network I/O before :meth:`init`."""

    def __init__(
        self, settings: Settings, transactional_id: str, *, transaction_timeout_ms: int = 10_000
    ) -> None:
        self._conf = settings.librdkafka("producer")
        self._conf.update(
            {
                "transactional.id": transactional_id,
                "transaction.timeout.ms": transaction_timeout_ms,
                # Scheduled tasks are few: send them at once.
                "linger.ms": 0,
            }
        )
        self.transactional_id = transactional_id
        self._producer: confluent_kafka.Producer | None = None

    def init(self, timeout: float) -> None:
        """Create the producer and fence every older one with the same id."""
        try:
            self._producer = confluent_kafka.Producer(self._conf)
            self._producer.init_transactions(timeout)
        except KafkaException as exc:
            raise _wrap(exc, f"init_transactions of {self.transactional_id!r}") from exc

    def _raw(self) -> confluent_kafka.Producer:
        if self._producer is None:
            raise KafkaError("transactional producer is not initialised")
        return self._producer

    def begin(self) -> None:
        try:
            self._raw().begin_transaction()
        except KafkaException as exc:
            raise _wrap(exc, "begin_transaction") from exc

    def produce(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        try:
            self._raw().produce(topic, value, key, headers=headers)  # type: ignore[arg-type]
        except (KafkaException, BufferError) as exc:
            raise KafkaError(f"produce to {topic!r} in a transaction failed: {exc}") from exc

    def commit(self, timeout: float) -> None:
        """Commit; on any failure the transaction is aborted (when it still can be)."""
        try:
            self._raw().commit_transaction(timeout)
        except KafkaException as exc:
            err = _wrap(exc, "commit_transaction")
            if not isinstance(err, Fenced):
                self.abort(timeout)
            raise err from exc

    def abort(self, timeout: float) -> None:
        # Fenced or fatal: nothing of this transaction becomes visible anyway.
        with contextlib.suppress(KafkaException):
            self._raw().abort_transaction(timeout)

    def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            producer.flush(0)


def _wrap(exc: KafkaException, what: str) -> KafkaError:
    err: Any = exc.args[0] if exc.args else None
    code = err.code() if err is not None and hasattr(err, "code") else None
    fenced_codes = {
        confluent_kafka.KafkaError._FENCED,
        confluent_kafka.KafkaError.PRODUCER_FENCED,
        confluent_kafka.KafkaError.INVALID_PRODUCER_EPOCH,
    }
    if code in fenced_codes or (err is not None and err.fatal()):
        return Fenced(f"{what}: fenced by a newer producer: {exc}")
    return KafkaError(f"{what} failed: {exc}", retriable=bool(err and err.retriable()))
