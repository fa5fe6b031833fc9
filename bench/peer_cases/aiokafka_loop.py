"""A bare aiokafka loop: ``getmany()`` batches; sleeps as asyncio tasks under a semaphore."""

from __future__ import annotations

import asyncio
from typing import Any

from _common import BOOTSTRAP, CONCURRENCY, GROUP, SLEEP, TOPIC, WORKLOAD, decode, hit
from aiokafka import AIOKafkaConsumer


async def main() -> None:
    consumer = AIOKafkaConsumer(
        TOPIC,
        bootstrap_servers=BOOTSTRAP,
        group_id=GROUP,
        auto_offset_reset="earliest",
        max_poll_records=500,
    )
    await consumer.start()
    if WORKLOAD == "noop":
        while True:
            batches = await consumer.getmany(timeout_ms=100, max_records=500)
            n = 0
            for msgs in batches.values():
                for msg in msgs:
                    decode(msg.value)
                    n += 1
            if n:
                hit(n)
    sem = asyncio.Semaphore(CONCURRENCY)
    running: set[asyncio.Task[None]] = set()

    async def work(task: Any) -> None:
        try:
            await asyncio.sleep(SLEEP)
            hit()
        finally:
            sem.release()

    while True:
        batches = await consumer.getmany(timeout_ms=100, max_records=500)
        for msgs in batches.values():
            for msg in msgs:
                task = decode(msg.value)
                await sem.acquire()
                t = asyncio.create_task(work(task))
                running.add(t)
                t.add_done_callback(running.discard)


if __name__ == "__main__":
    asyncio.run(main())
