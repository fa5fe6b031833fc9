"""The ktf cases: handlers for ``ktf worker --handlers ktf_handlers`` (see bench/peers.py).

``unordered`` as in bench/throughput.py: the peers impose no per-key order either.
"""

from __future__ import annotations

import asyncio
from typing import Any

from _common import CONCURRENCY, SCHEMA, SLEEP, TOPIC, WORKLOAD, hit

from framework import handler

if WORKLOAD == "noop":

    @handler(topic=TOPIC, schema=SCHEMA, ordering="unordered", concurrency=CONCURRENCY)
    async def bench_noop(task: dict[str, Any], ctx: Any) -> None:
        hit()

elif WORKLOAD == "sleep":

    @handler(topic=TOPIC, schema=SCHEMA, ordering="unordered", concurrency=CONCURRENCY)
    async def bench_sleep(task: dict[str, Any], ctx: Any) -> None:
        await asyncio.sleep(SLEEP)
        hit()

else:
    raise SystemExit(f"no ktf handler for workload {WORKLOAD!r}")
