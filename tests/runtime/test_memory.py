"""Memory stays bounded by the configured buffers, whatever the backlog."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from framework.config import Settings
from tests.runtime._helpers import create_topics, produce_tasks, spawn_worker, stop_process

pytestmark = [pytest.mark.broker, pytest.mark.slow]

MIB = 1024 * 1024


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/{pid}/status")


def test_peak_rss_bounded_with_200k_backlog_and_slow_handler(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    topic, empty, group = f"{unique}.tasks", f"{unique}.empty", f"{unique}-g"
    partitions, backlog = 6, 200_000
    create_topics(
        kafka_bootstrap,
        {
            topic: partitions,
            f"{topic}.reply": 1,
            f"{topic}.dlq": 1,
            empty: partitions,
            f"{empty}.reply": 1,
            f"{empty}.dlq": 1,
        },
    )
    produce_tasks(kafka_bootstrap, topic, ((b"k%d" % (n % 1000), n, 1_000) for n in range(backlog)))
    env = {"KTF_TEST_ORDERING": "unordered"}
    # Same code, same config, empty topic: the baseline every byte above is charged to.
    base = spawn_worker(
        kafka_bootstrap, empty, f"{group}-base", env=env, log_path=tmp_path / "base.log"
    )
    loaded = spawn_worker(kafka_bootstrap, topic, group, env=env, log_path=tmp_path / "loaded.log")
    try:
        time.sleep(25)  # the buffers and librdkafka's prefetch fill within seconds
        assert base.poll() is None and loaded.poll() is None, "a worker exited early"
        base_hwm = _status_kib(base.pid, "VmHWM") * 1024
        loaded_hwm = _status_kib(loaded.pid, "VmHWM") * 1024
    finally:
        stop_process(base, 15)
        stop_process(loaded, 15)
    s = Settings()
    # Formula of docs/performance.md: librdkafka prefetch + framework buffers.
    record_cost = 1_500  # bytes per buffered record: value, Message, Envelope, lane entry
    prefetch = s.queued_max_kbytes * 1024 + partitions * s.fetch_max_bytes_per_partition
    framework_buffers = (s.max_buffered + s.batch_size) * record_cost
    bound = prefetch + framework_buffers + 40 * MIB  # allocator slack, reply producer queue
    extra = loaded_hwm - base_hwm
    print(
        f"\nbaseline VmHWM={base_hwm / MIB:.1f} MiB loaded VmHWM={loaded_hwm / MIB:.1f} MiB "
        f"extra={extra / MIB:.1f} MiB bound={bound / MIB:.1f} MiB "
        f"(prefetch {prefetch / MIB:.0f} + buffers {framework_buffers / MIB:.0f} + 40)"
    )
    assert extra <= bound
    assert loaded_hwm <= base_hwm + 150 * MIB
