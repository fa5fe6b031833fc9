"""A handler and a schedule for the CLI tests (topic from ``KTF_SCHED_TEST_TOPIC``)."""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from framework.registry import handler
from framework.scheduling import periodic

TOPIC = os.environ.get("KTF_SCHED_TEST_TOPIC", "ktf.tests.scheduling")


@handler(topic=TOPIC, schema="ktf.examples.WordCountTask")
async def words(task: dict[str, Any], ctx: Any) -> None:
    return None


@periodic(every="1h", topic=TOPIC, catch_up="latest")
def hourly(due: dt.datetime) -> dict[str, Any]:
    return {"text": f"due {due.isoformat()}", "lowercase": True}
