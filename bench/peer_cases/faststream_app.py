"""FastStream: a KafkaBroker subscriber with a fastavro decoder, per message or batch=True.

Per-message service logs go to DEBUG (``log_level``), so they cost a level check
only, as a production deployment would set them.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from _common import BOOTSTRAP, GROUP, TOPIC, decode, hit
from faststream import FastStream
from faststream.kafka import KafkaBroker

broker = KafkaBroker(BOOTSTRAP, log_level=logging.DEBUG)
app = FastStream(broker)

if os.environ.get("BENCH_MODE") == "batch":

    async def avro_batch(msg: Any) -> list[dict[str, Any]]:
        return [decode(body) for body in msg.body]

    @broker.subscriber(
        TOPIC,
        group_id=GROUP,
        auto_offset_reset="earliest",
        batch=True,
        max_records=500,
        decoder=avro_batch,
    )
    async def handle_batch(tasks: list[dict[str, Any]]) -> None:
        hit(len(tasks))

else:

    async def avro(msg: Any) -> dict[str, Any]:
        return decode(msg.body)  # type: ignore[no-any-return]

    @broker.subscriber(TOPIC, group_id=GROUP, auto_offset_reset="earliest", decoder=avro)
    async def handle(task: dict[str, Any]) -> None:
        hit()


if __name__ == "__main__":
    asyncio.run(app.run())
