"""Handlers for the runtime tests, loaded by ``ktf worker --handlers tests.runtime.handlers_fixture``.

The topic comes from ``KTF_TEST_TOPIC`` so every test gets its own topics; each
reply carries the worker's pid and the handler's start/end times so a test can
count duplicates and check ordering from the reply topic alone.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from framework.registry import handler

TASK_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "RuntimeTestTask",
    "namespace": "ktf.tests",
    "fields": [
        {"name": "n", "type": "long"},
        {"name": "sleep_ms", "type": "int"},
    ],
}
RESULT_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "RuntimeTestResult",
    "namespace": "ktf.tests",
    "fields": [
        {"name": "n", "type": "long"},
        {"name": "pid", "type": "int"},
        {"name": "offset", "type": "long"},
        {"name": "partition", "type": "int"},
        {"name": "started", "type": "double"},
        {"name": "ended", "type": "double"},
    ],
}

_PID = os.getpid()


@handler(
    topic=os.environ.get("KTF_TEST_TOPIC", "ktf.tests.runtime"),
    schema=TASK_SCHEMA,
    result_schema=RESULT_SCHEMA,
    ordering=os.environ.get("KTF_TEST_ORDERING", "key"),  # type: ignore[arg-type]
    concurrency=int(os.environ.get("KTF_TEST_CONCURRENCY", "100")),
)
async def sleepy(task: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """Sleep ``sleep_ms`` and report who ran the task, where and when."""
    started = time.time()
    if task["sleep_ms"] > 0:
        await asyncio.sleep(task["sleep_ms"] / 1000.0)
    return {
        "n": task["n"],
        "pid": _PID,
        "offset": ctx.offset,
        "partition": ctx.partition,
        "started": started,
        "ended": time.time(),
    }
