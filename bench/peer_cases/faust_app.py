"""faust-streaming: an agent iterating over a topic of raw bytes, decoded with fastavro."""

from __future__ import annotations

import sys
from typing import Any

import faust
from _common import BOOTSTRAP, GROUP, TOPIC, decode, hit

app = faust.App(
    GROUP,
    broker=f"kafka://{BOOTSTRAP}",
    value_serializer="raw",
    consumer_auto_offset_reset="earliest",
    web_enabled=False,
    topic_partitions=6,
)
topic = app.topic(TOPIC, value_type=bytes, value_serializer="raw")


@app.agent(topic)
async def process(stream: Any) -> None:
    async for value in stream:
        decode(value)
        hit()


if __name__ == "__main__":
    sys.argv = [sys.argv[0], "worker", "--loglevel=warn"]
    app.main()
