"""kafka-task-framework: distributed tasks on Apache Kafka.

Tasks are Avro records on partitioned topics; workers are consumer-group members
that run ``@handler`` coroutines in a bounded asyncio pool.
"""

import logging as _logging

import structlog as _structlog

from framework.client import (
    CallCancelled,
    CallError,
    CallExpired,
    CallTimeout,
    Reply,
    SyncTaskClient,
    TaskClient,
    TaskFailed,
    TopicSchema,
)
from framework.config import Settings
from framework.errors import (
    ConfigError,
    DecodeError,
    EncodeError,
    FrameworkError,
    HandlerLoadError,
    KafkaError,
    Reject,
    Retry,
    SchemaError,
    TaskCancelled,
    TaskExpired,
    TaskTimeout,
)
from framework.registry import HandlerSpec, handler, load_handlers
from framework.routing.policy import RetryPolicy
from framework.runtime.context import TaskContext
from framework.runtime.worker import Worker

__all__ = [
    "CallCancelled",
    "CallError",
    "CallExpired",
    "CallTimeout",
    "ConfigError",
    "DecodeError",
    "EncodeError",
    "FrameworkError",
    "HandlerLoadError",
    "HandlerSpec",
    "KafkaError",
    "Reject",
    "Reply",
    "Retry",
    "RetryPolicy",
    "SchemaError",
    "Settings",
    "SyncTaskClient",
    "TaskCancelled",
    "TaskClient",
    "TaskContext",
    "TaskExpired",
    "TaskFailed",
    "TaskTimeout",
    "TopicSchema",
    "Worker",
    "handler",
    "load_handlers",
]

__version__ = "0.1.0"

if not _structlog.is_configured():
    # Unconfigured structlog prints every level; a library should not chat at DEBUG.
    # `ktf` commands and applications that configure logging replace this.
    _structlog.configure(wrapper_class=_structlog.make_filtering_bound_logger(_logging.INFO))
