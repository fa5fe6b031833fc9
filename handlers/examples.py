"""Three example handlers: a light CPU task, an I/O-style task and one that fails.

Run them with ``ktf worker --handlers handlers.examples``; their schemas live in
``schemas/examples/``.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from framework import Reject, TaskContext, handler

WORD_COUNT_TOPIC = "tasks.word-count"
FETCH_URL_TOPIC = "tasks.fetch-url"
DIVIDE_TOPIC = "tasks.divide"


@handler(
    topic=WORD_COUNT_TOPIC,
    schema="ktf.examples.WordCountTask",
    result_schema="ktf.examples.WordCountResult",
    ordering="unordered",
    concurrency=50,
)
async def word_count(task: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
    """Count words and distinct words; return the three most frequent."""
    words = task["text"].split()
    if task["lowercase"]:
        words = [w.lower() for w in words]
    counts = Counter(words)
    return {
        "words": len(words),
        "distinct": len(counts),
        "top": [w for w, _ in counts.most_common(3)],
    }


@handler(
    topic=FETCH_URL_TOPIC,
    schema="ktf.examples.FetchUrlTask",
    result_schema="ktf.examples.FetchUrlResult",
    ordering="key",
    concurrency=200,
    timeout=30.0,
)
async def fetch_url(task: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
    """Pretend to fetch a URL: await for ``latency_ms`` (an I/O-bound task)."""
    await asyncio.sleep(task["latency_ms"] / 1000.0)
    return {"url": task["url"], "status": 200, "bytes": len(task["url"]) * 100}


@handler(
    topic=DIVIDE_TOPIC,
    schema="ktf.examples.DivideTask",
    result_schema="ktf.examples.DivideResult",
    ordering="partition",
    concurrency=10,
)
async def divide(task: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
    """Integer division; a zero divisor fails permanently (the task is dead-lettered)."""
    if task["divisor"] == 0:
        raise Reject(f"cannot divide {task['dividend']} by zero")
    quotient, remainder = divmod(task["dividend"], task["divisor"])
    return {"quotient": quotient, "remainder": remainder}
