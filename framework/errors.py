"""The framework's exception hierarchy.

Every error the framework raises derives from :class:`FrameworkError`. Each layer
has its own subclass, and third-party errors are wrapped with ``raise ... from exc``
so the cause is kept. Retry meaning lives on the type: ``retriable`` tells the
router whether another attempt can succeed (as aiokafka's ``retriable`` attribute
and Temporal's ``non_retryable`` flag do).
"""

from __future__ import annotations


class FrameworkError(Exception):
    """Root of every error raised by the framework."""

    #: Whether another attempt at the same operation may succeed.
    retriable: bool = False

    def __init__(self, message: str, *, retriable: bool | None = None) -> None:
        super().__init__(message)
        if retriable is not None:
            self.retriable = retriable

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class ConfigError(FrameworkError):
    """Invalid configuration: names the setting and where it came from."""


class KafkaError(FrameworkError):
    """A Kafka client operation failed; wraps ``confluent_kafka.KafkaException``."""


class SerdeError(FrameworkError):
    """Base of encoding, decoding and schema errors."""


class SchemaError(SerdeError):
    """A schema file does not parse, or a schema name cannot be resolved."""


class DecodeError(SerdeError):
    """Record bytes are not valid for the topic's schema or wire format."""


class EncodeError(SerdeError):
    """A payload does not match its schema; names the offending field."""


class HandlerError(FrameworkError):
    """Base of handler registration and loading errors."""


class HandlerLoadError(HandlerError):
    """A handler module does not import, or two handlers claim one topic."""


class RoutingError(FrameworkError):
    """A reply, retry or dead-letter record could not be delivered."""

    retriable = True


class TaskError(FrameworkError):
    """Base of errors a handler raises to steer what happens to its task."""


class Retry(TaskError):
    """Raised by a handler: try this task again, after ``delay`` seconds at least."""

    retriable = True

    def __init__(self, message: str = "retry requested", *, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class Reject(TaskError):
    """Raised by a handler: this task can never succeed; dead-letter it now."""

    retriable = False

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TaskTimeout(TaskError):
    """The handler ran past its timeout and was cancelled."""

    retriable = True


class TaskExpired(TaskError):
    """The task's deadline passed before it started or while it ran."""


class TaskCancelled(TaskError):
    """The task was cancelled through the control topic."""


class DevKafkaError(FrameworkError):
    """The local development broker could not be resolved, started or stopped."""
