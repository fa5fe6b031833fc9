"""The producer SDK: submit tasks from any Python code, call them, cancel them.

``TaskClient`` (asyncio) and ``SyncTaskClient`` (blocking) validate payloads against
the topic's schema, write the contract headers (docs/producing.md) and follow a
reply topic without a consumer group for ``call()``.
"""

from framework.client.aio import REPLY_TOPIC_PREFIX, TaskClient, default_reply_topic
from framework.client.errors import (
    CallCancelled,
    CallError,
    CallExpired,
    CallTimeout,
    TaskFailed,
)
from framework.client.replies import Reply
from framework.client.sync import SyncTaskClient
from framework.client.tasks import Deadline, deadline_ms, new_traceparent, task_headers
from framework.client.topics import TopicSchema
from framework.headers import new_id

__all__ = [
    "REPLY_TOPIC_PREFIX",
    "CallCancelled",
    "CallError",
    "CallExpired",
    "CallTimeout",
    "Deadline",
    "Reply",
    "SyncTaskClient",
    "TaskClient",
    "TaskFailed",
    "TopicSchema",
    "deadline_ms",
    "default_reply_topic",
    "new_id",
    "new_traceparent",
    "task_headers",
]
