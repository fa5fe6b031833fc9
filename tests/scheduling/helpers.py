"""Broker helpers for the scheduling tests: reading what the scheduler produced."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from framework import headers as h
from framework.config import Settings
from framework.scheduling.state import GroupState, read_state


class CommittedReader:
    """Reads every partition of a topic from the start, committed records only."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.records: list[Any] = []
        self._c = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"reader-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        md = self._c.list_topics(topic, timeout=10)
        parts = sorted(md.topics[topic].partitions)
        self._c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])

    def poll(self, seconds: float = 0.5) -> list[Any]:
        end = time.monotonic() + seconds
        got: list[Any] = []
        while time.monotonic() < end:
            got.extend(m for m in self._c.consume(500, 0.1) if m.error() is None)
        self.records.extend(got)
        return got

    def task_ids(self) -> list[str]:
        return [h.to_dict(m.headers()).get(h.TASK_ID, "") for m in self.records]

    def close(self) -> None:
        self._c.close()


def state_of(bootstrap: str, group: str) -> GroupState:
    return read_state(Settings(bootstrap_servers=bootstrap, group_id=group), group, timeout=20)


def wait_for_leader(
    bootstrap: str, group: str, *, above_epoch: int = 0, timeout: float = 40.0
) -> GroupState:
    """Until the state topic names a leader with an epoch above ``above_epoch``."""
    deadline = time.monotonic() + timeout
    while True:
        state = state_of(bootstrap, group)
        if state.leader is not None and state.leader.epoch > above_epoch:
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"no leader above epoch {above_epoch} for {group} in {timeout}s")
        time.sleep(0.2)


def windows_of(ids: list[str], name: str) -> list[int]:
    """Due times (ms) of the task ids ``<name>@<due>``."""
    prefix = f"{name}@"
    return sorted(int(i[len(prefix) :]) for i in ids if i.startswith(prefix))


async def until(cond: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    """Poll ``cond`` on the event loop until it holds or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(step)
    return True
