"""Header names: part of the user-facing contract (see docs/producing.md)."""

from __future__ import annotations

import os

TASK_ID = "ktf-task-id"
ATTEMPT = "ktf-attempt"
DEADLINE = "ktf-deadline"
NOT_BEFORE = "ktf-not-before"
REPLY_TO = "ktf-reply-to"
CORRELATION_ID = "ktf-correlation-id"
STATUS = "ktf-status"
TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
ERROR_TYPE = "ktf-error-type"
ERROR_MESSAGE = "ktf-error-message"
ERROR_STACK = "ktf-error-stack"
ORIGINAL_TOPIC = "ktf-original-topic"
ORIGINAL_PARTITION = "ktf-original-partition"
ORIGINAL_OFFSET = "ktf-original-offset"
ORIGINAL_TIMESTAMP = "ktf-original-timestamp"
CONSUMER_GROUP = "ktf-consumer-group"
FAILED_AT = "ktf-failed-at"
REPLAYED_FROM = "ktf-replayed-from"
#: on a stub dead letter (no value): why the full dead letter could not be written
STUB_REASON = "ktf-stub-reason"

#: ``ktf-error-type`` of a record whose contract headers are malformed
ERROR_INVALID_HEADER = "InvalidHeader"

STATUS_OK = "ok"
STATUS_ERROR = "error"
STATUS_EXPIRED = "expired"
STATUS_CANCELLED = "cancelled"

CONTROL_TOPIC = "ktf.control"

Headers = list[tuple[str, bytes]]


def new_id() -> str:
    """A random 128-bit id as 32 lowercase hex digits (a uuid4's entropy, cheaper)."""
    return os.urandom(16).hex()


def to_dict(headers: list[tuple[str, bytes | None]] | None) -> dict[str, str]:
    """Decode Kafka headers to a dict of UTF-8 strings (last value of a name wins)."""
    out: dict[str, str] = {}
    if not headers:
        return out
    for name, value in headers:
        if value is None:
            continue
        out[name] = value.decode("utf-8", "replace")
    return out


def encode(headers: dict[str, str]) -> Headers:
    """Encode a dict of header strings for producing."""
    return [(name, value.encode("utf-8")) for name, value in headers.items()]


def retry_topic(topic: str, delay: str) -> str:
    return f"{topic}.retry.{delay}"


def dlq_topic(topic: str) -> str:
    return f"{topic}.dlq"


def reply_topic(topic: str) -> str:
    return f"{topic}.reply"
