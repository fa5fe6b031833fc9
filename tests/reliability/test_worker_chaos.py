"""3 workers under SIGKILL chaos (a kill every few seconds): 0 lost, duplicates counted.

Workers are `ktf worker` processes with static membership (as the chart runs them);
a killed worker is restarted at once under the same instance id, as a StatefulSet
would. Figures are printed (run with -s) and recorded in docs/reliability.md.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from tests.reliability.harness import (
    Load,
    Replies,
    WorkerProc,
    create_topics,
    percentile,
    wait_all_committed,
    worker_env,
)

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.timeout(240)]

TASKS = 3000
RATE = 100.0  # tasks/s: the load lasts ~30 s, kills happen throughout
KILL_EVERY = 3.0


def test_three_workers_under_sigkill_chaos_lose_nothing(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    topic, group = f"{unique}.chaos", f"{unique}-chaos"
    create_topics(kafka_bootstrap, [topic, f"{topic}.reply", f"{topic}.dlq"], 6, 1)
    workers = [
        WorkerProc(
            f"w{i}",
            worker_env(kafka_bootstrap, topic, group, f"w{i}", KTF_REL_DELAY_MS="20"),
            tmp_path / f"w{i}.log",
        )
        for i in range(3)
    ]
    replies = Replies(kafka_bootstrap, f"{topic}.reply")
    load = Load(kafka_bootstrap, topic, TASKS, RATE)
    rng = random.Random(13)
    kills = 0
    try:
        for w in workers:
            w.start()
        replies.start(load.sent_at)
        load.start()
        t0 = time.monotonic()
        while time.monotonic() - t0 < TASKS / RATE:
            time.sleep(KILL_EVERY)
            victim = rng.choice(workers)
            victim.kill()
            kills += 1
            victim.start()
        load.join(120)
        assert load.failed == 0 and load.acked == TASKS
        missing = replies.wait_for(load.ids, timeout=120)
        left = wait_all_committed(kafka_bootstrap, group, topic, timeout=60)
    finally:
        for w in workers:
            w.stop()
        replies.close()
    dups = replies.duplicates()
    print(
        f"\nchaos: {TASKS} tasks, {kills} SIGKILLs, lost={len(missing)}, duplicates={dups} "
        f"({dups / TASKS:.1%}), reply latency p50={percentile(replies.latency, 0.5):.2f}s "
        f"p99={percentile(replies.latency, 0.99):.2f}s"
    )
    assert kills >= 8
    assert missing == set(), f"lost {len(missing)} tasks, e.g. {sorted(missing)[:5]}"
    assert left == {}, f"partitions stuck below their end: {left}"
