"""A thin wrapper over ``confluent_kafka.admin.AdminClient``: topics and metadata."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from framework.config import Settings
from framework.errors import KafkaError


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication: int
    config: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class EnsureResult:
    created: list[str]
    existing: list[str]
    #: existing topics whose partition count differs from the request: name -> actual
    mismatched: dict[str, int]


class KafkaAdmin:
    """Admin operations with explicit timeouts; no network until a method is called."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: AdminClient | None = None

    @property
    def client(self) -> AdminClient:
        if self._client is None:
            try:
                self._client = AdminClient(self._settings.librdkafka("admin"))
            except KafkaException as exc:
                raise KafkaError(f"cannot create admin client: {exc}") from exc
        return self._client

    def topic_partitions(self, timeout: float = 10.0) -> dict[str, int]:
        """Existing topics and their partition counts."""
        try:
            md = self.client.list_topics(timeout=timeout)
        except KafkaException as exc:
            raise KafkaError(
                f"cannot read metadata from {self._settings.bootstrap_servers} "
                f"within {timeout:.0f}s: {exc}"
            ) from exc
        return {name: len(t.partitions) for name, t in md.topics.items() if t.error is None}

    def ensure_topics(self, specs: Sequence[TopicSpec], timeout: float = 30.0) -> EnsureResult:
        """Create missing topics; existing ones are left alone (and reported)."""
        existing = self.topic_partitions(timeout)
        wanted = {s.name: s for s in specs}
        to_create = [s for name, s in wanted.items() if name not in existing]
        created: list[str] = []
        if to_create:
            futures = self.client.create_topics(
                [
                    NewTopic(
                        s.name,
                        num_partitions=s.partitions,
                        replication_factor=s.replication,
                        config=s.config,
                    )
                    for s in to_create
                ],
                operation_timeout=timeout,
                request_timeout=timeout,
            )
            for name, fut in futures.items():
                try:
                    fut.result(timeout=timeout)
                    created.append(name)
                except KafkaException as exc:
                    err = exc.args[0] if exc.args else None
                    if getattr(err, "name", lambda: "")() == "TOPIC_ALREADY_EXISTS":
                        continue
                    raise KafkaError(f"cannot create topic {name!r}: {exc}") from exc
                except TimeoutError as exc:
                    raise KafkaError(f"creating topic {name!r} timed out after {timeout}s") from exc
        mismatched = {
            name: existing[name]
            for name, s in wanted.items()
            if name in existing and existing[name] != s.partitions
        }
        return EnsureResult(
            created=sorted(created),
            existing=sorted(n for n in wanted if n in existing),
            mismatched=mismatched,
        )

    def delete_topics(self, names: Sequence[str], timeout: float = 30.0) -> None:
        if not names:
            return
        futures = self.client.delete_topics(list(names), operation_timeout=timeout)
        for name, fut in futures.items():
            try:
                fut.result(timeout=timeout)
            except KafkaException as exc:
                raise KafkaError(f"cannot delete topic {name!r}: {exc}") from exc
