"""The handler the reliability cases run in worker processes.

Its topic comes from ``KTF_REL_TOPIC`` (each case has its own). It returns the task's
text as the only "top" word, so a reply names the task it answers; ``KTF_REL_DELAY_MS``
makes each task take that long, so kills catch tasks in flight.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from framework import TaskContext, handler

TOPIC = os.environ.get("KTF_REL_TOPIC", "rel.tasks")
DELAY = float(os.environ.get("KTF_REL_DELAY_MS", "5")) / 1000.0


@handler(
    topic=TOPIC,
    schema="ktf.examples.WordCountTask",
    result_schema="ktf.examples.WordCountResult",
    ordering="unordered",
    concurrency=50,
)
async def echo(task: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
    await asyncio.sleep(DELAY)
    return {"words": 1, "distinct": 1, "top": [task["text"]]}
