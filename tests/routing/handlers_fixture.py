"""Handlers for tests that run ``ktf worker`` as a subprocess.

Topic names come from the environment so every test gets its own topics:
``KTF_TEST_TOPIC`` (task topic) and ``KTF_TEST_MARKER`` (a file each started task
appends its id to, so the test knows the task is running in the other process).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from framework import handler
from framework.runtime.context import TaskContext

TOPIC = os.environ.get("KTF_TEST_TOPIC", "tests.routing.unset")
MARKER = os.environ.get("KTF_TEST_MARKER", os.devnull)


@handler(
    topic=TOPIC,
    schema="ktf.examples.WordCountTask",
    reply_topic=f"{TOPIC}.reply",
    ordering="unordered",
)
async def long_task(task: dict[str, Any], ctx: TaskContext) -> None:
    """Sleeps for ``text`` seconds (a stand-in for a 30-second job)."""
    await asyncio.to_thread(_mark, ctx.task_id)
    await asyncio.sleep(float(task["text"]))


def _mark(task_id: str) -> None:
    with open(MARKER, "a", encoding="utf-8") as fh:
        fh.write(task_id + "\n")
