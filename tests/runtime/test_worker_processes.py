"""``ktf worker`` processes against the real broker: failover under SIGKILL, SIGTERM drain."""

from __future__ import annotations

import random
import signal
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from tests.runtime._helpers import (
    ReplyReader,
    committed,
    create_topics,
    produce_tasks,
    spawn_worker,
    stop_process,
)

pytestmark = pytest.mark.broker


def _tail(paths: list[Path], lines: int = 15) -> str:
    out = []
    for p in paths:
        if p.exists():
            text = p.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {p.name}\n" + "\n".join(text))
    return "\n".join(out)


def _wait_assigned(logs: list[Path], timeout: float) -> None:
    """Until every worker log shows a non-empty assignment and none changed for 2 s."""
    end = time.monotonic() + timeout
    last, stable_since = "", time.monotonic()
    while time.monotonic() < end:
        texts = [p.read_text(errors="replace") if p.exists() else "" for p in logs]
        snapshot = "".join(texts)
        if snapshot != last:
            last, stable_since = snapshot, time.monotonic()
        owned = all(".tasks[" in t and "partitions assigned" in t for t in texts)
        if owned and time.monotonic() - stable_since >= 2.0:
            return
        time.sleep(0.2)
    pytest.fail("the workers did not settle on an assignment\n" + _tail(logs))


def test_sigkill_and_join_lose_nothing_and_duplicate_only_the_killed_window(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    topic, group = f"{unique}.tasks", f"{unique}-g"
    partitions, n_tasks = 6, 20_000
    create_topics(kafka_bootstrap, {topic: partitions, f"{topic}.reply": 6, f"{topic}.dlq": 1})
    # Config the duplicate bound is derived from (passed to every worker). A low
    # concurrency stretches the run to ~15 s so the kill lands mid-run.
    max_buffered, batch, concurrency, commit_interval = 1_000, 200, 5, 0.2
    env = {
        "KTF_SESSION_TIMEOUT_MS": "6000",
        "KTF_COMMIT_INTERVAL": str(commit_interval),
        "KTF_MAX_BUFFERED": str(max_buffered),
        "KTF_BATCH_SIZE": str(batch),
        "KTF_TEST_CONCURRENCY": str(concurrency),
    }
    logs = [tmp_path / f"w{i}.log" for i in range(4)]
    procs = [
        spawn_worker(kafka_bootstrap, topic, group, env=env, log_path=logs[i]) for i in range(3)
    ]
    # Let the three members settle on an assignment before the work arrives, so
    # every one of them (the victim included) gets a share.
    _wait_assigned(logs[:3], timeout=30)
    rng = random.Random(7)
    produce_tasks(
        kafka_bootstrap,
        topic,
        [(b"key-%d" % rng.randrange(300), n, rng.randint(0, 20)) for n in range(n_tasks)],
    )
    reader = ReplyReader(kafka_bootstrap, f"{topic}.reply")
    try:
        victim = procs[1]
        # Kill one worker once it has clearly taken part.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            reader.poll(0.3)
            by_pid = Counter(r["pid"] for r in reader.replies)
            if by_pid[victim.pid] >= 1_000:
                break
        else:
            pytest.fail(f"the victim processed too little: {dict(by_pid)}\n" + _tail(logs))
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        killed_at = len({r["n"] for r in reader.replies})
        procs.append(spawn_worker(kafka_bootstrap, topic, group, env=env, log_path=logs[3]))
        seen = reader.wait_distinct(n_tasks, timeout=120)
        assert len(seen) == n_tasks, f"{n_tasks - len(seen)} tasks never got a reply\n" + _tail(
            logs
        )
        reader.poll(2.0)  # late duplicates, if any
        joined_pid = procs[3].pid
        assert any(r["pid"] == joined_pid for r in reader.replies), "the fourth worker got no work"
    finally:
        for p in procs:
            stop_process(p)
        reader.close()

    assert all(r["status"] == "ok" for r in reader.replies)
    pids_by_n: dict[int, list[int]] = defaultdict(list)
    for r in reader.replies:
        pids_by_n[r["n"]].append(r["pid"])
    duplicates = {n: pids for n, pids in pids_by_n.items() if len(pids) > 1}
    dup_count = sum(len(p) - 1 for p in duplicates.values())
    # Little's law caps what the victim can finish between two commits.
    rate_cap = concurrency / 0.010  # concurrency / mean handler time (0-20 ms)
    bound = max_buffered + batch + int(rate_cap * (commit_interval + 0.1))
    print(
        f"\nreplies={len(reader.replies)} distinct={len(pids_by_n)} killed_after={killed_at} "
        f"duplicated_tasks={len(duplicates)} extra_replies={dup_count} bound={bound}"
    )
    # Every duplicate is a task the killed worker had finished but not committed.
    not_victims = {n: pids for n, pids in duplicates.items() if victim.pid not in pids}
    assert not not_victims, f"duplicates not involving the killed worker: {list(not_victims)[:5]}"
    assert all(pids.count(victim.pid) <= 1 for pids in duplicates.values())
    assert dup_count <= bound


def test_sigterm_under_load_drains_in_time_and_commits_every_finished_task(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    topic, group = f"{unique}.tasks", f"{unique}-g"
    partitions, n_tasks, drain = 3, 3_000, 5.0
    create_topics(kafka_bootstrap, {topic: partitions, f"{topic}.reply": 1, f"{topic}.dlq": 1})
    rng = random.Random(11)
    produce_tasks(
        kafka_bootstrap, topic, [(b"k%d" % n, n, rng.randint(100, 1_000)) for n in range(n_tasks)]
    )
    log = tmp_path / "worker.log"
    proc = spawn_worker(
        kafka_bootstrap,
        topic,
        group,
        args=["--drain-timeout", str(drain)],
        env={"KTF_TEST_ORDERING": "unordered", "KTF_COMMIT_INTERVAL": "0.5"},
        log_path=log,
    )
    reader = ReplyReader(kafka_bootstrap, f"{topic}.reply")
    try:
        reader.wait_distinct(300, timeout=60)
        assert len(reader.replies) >= 300, _tail([log])
        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        rc = proc.wait(drain + 10)
        took = time.monotonic() - sent
    finally:
        stop_process(proc)
    while reader.poll(1.5):
        pass
    reader.close()
    print(
        f"\nSIGTERM exit after {took:.2f}s (drain timeout {drain}s), rc={rc}, "
        f"replies={len(reader.replies)} of {n_tasks}"
    )
    assert rc == 0, _tail([log])
    assert took <= drain + 3.0
    assert len(reader.replies) < n_tasks, "the test needs tasks left over at SIGTERM"
    offsets = committed(kafka_bootstrap, group, topic, partitions)
    uncovered = [
        (r["partition"], r["offset"])
        for r in reader.replies
        if r["offset"] >= offsets[r["partition"]]
    ]
    assert not uncovered, f"finished tasks above the committed offsets {offsets}: {uncovered[:5]}"
