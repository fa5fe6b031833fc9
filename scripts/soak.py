#!/usr/bin/env python3
"""Soak: steady load for --duration seconds on a private broker, with random worker
SIGKILLs, rebalances (a worker added and stopped), and a broker restart half way.
Reports lost (must be 0), duplicates, reply latency p50/p99, and worker RSS sampled
every --sample seconds (first vs last quarter, to show it stays flat).

    .venv/bin/python scripts/soak.py --duration 1800          # the 30-minute run
    .venv/bin/python scripts/soak.py --duration 180 --rate 50  # a short one

Exit status 1 when a task was lost or a partition is stuck.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from framework.devkafka import ClusterSpec, down, up  # noqa: E402
from tests.reliability.harness import (  # noqa: E402
    Load,
    Replies,
    WorkerProc,
    create_topics,
    percentile,
    wait_all_committed,
    worker_env,
)


def free_base() -> int:
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise SystemExit("no free ports")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=1800.0, help="seconds of load")
    p.add_argument("--rate", type=float, default=50.0, help="tasks per second")
    p.add_argument("--workers", type=int, default=3)
    p.add_argument("--kill-every", type=float, default=20.0, help="mean seconds between kills")
    p.add_argument("--sample", type=float, default=10.0, help="seconds between RSS samples")
    args = p.parse_args()
    rng = random.Random(13)
    tmp = Path(tempfile.mkdtemp(prefix="ktf-soak-"))
    spec = ClusterSpec(base_port=free_base(), state_dir=tmp / "kafka")
    up(spec, progress=lambda _: None, timeout=180)
    b = spec.bootstrap_servers
    topic, group = "soak.tasks", "soak-workers"
    create_topics(b, [topic, f"{topic}.reply", f"{topic}.dlq", "ktf.control"], 6, 1)
    names = [f"w{i}" for i in range(args.workers + 1)]
    pool = {
        n: WorkerProc(n, worker_env(b, topic, group, n, KTF_REL_DELAY_MS="10"), tmp / f"{n}.log")
        for n in names
    }
    active = names[: args.workers]
    for n in active:
        pool[n].start()
    count = int(args.duration * args.rate)
    load = Load(b, topic, count, args.rate)
    replies = Replies(b, f"{topic}.reply")
    replies.start(load.sent_at)
    load.start()
    events: list[str] = []
    rss: list[tuple[float, int]] = []
    t0 = time.monotonic()
    next_kill = t0 + rng.expovariate(1 / args.kill_every)
    next_sample = t0
    restarted_broker = scaled = scaled_in = False
    while time.monotonic() - t0 < args.duration:
        now = time.monotonic()
        if now >= next_kill:
            victim = rng.choice(active)
            pool[victim].kill()
            pool[victim].start()
            events.append(f"{now - t0:.0f}s kill -9 {victim}")
            next_kill = now + rng.expovariate(1 / args.kill_every)
        extra = names[-1]  # joins and leaves: two rebalances, never in the kill rotation
        if not scaled and now - t0 > args.duration * 0.25:
            pool[extra].start()
            events.append(f"{now - t0:.0f}s scale out: +{extra}")
            scaled = True
        if scaled and not scaled_in and now - t0 > args.duration * 0.4:
            pool[extra].stop()
            events.append(f"{now - t0:.0f}s scale in: -{extra} (SIGTERM, drained)")
            scaled_in = True
        if not restarted_broker and now - t0 > args.duration * 0.5:
            down(spec, timeout=30)
            time.sleep(5)
            up(spec, progress=lambda _: None, timeout=180)
            events.append(f"{now - t0:.0f}s broker restarted")
            restarted_broker = True
        if now >= next_sample:
            total = sum(r for n in active if (r := pool[n].rss_kib()) is not None)
            rss.append((now - t0, total // max(1, len(active))))
            next_sample = now + args.sample
        time.sleep(0.2)
    load.join(300)
    missing = replies.wait_for(load.ids, timeout=240)
    left = wait_all_committed(b, group, topic, timeout=120)
    for w in pool.values():
        w.stop()
    replies.close()
    down(spec)
    q = max(1, len(rss) // 4)
    first, last = median(r for _, r in rss[:q]), median(r for _, r in rss[-q:])
    report = {
        "duration_s": args.duration,
        "tasks": count,
        "acked": load.acked,
        "lost": len(missing),
        "duplicates": replies.duplicates(),
        "stuck_partitions": left,
        "latency_p50_s": round(percentile(replies.latency, 0.5), 3),
        "latency_p99_s": round(percentile(replies.latency, 0.99), 3),
        "rss_kib_per_worker_first_quarter": first,
        "rss_kib_per_worker_last_quarter": last,
        "rss_growth_pct": round(100 * (last - first) / first, 1) if first else None,
        "events": events,
    }
    print(json.dumps(report, indent=2))
    return 0 if not missing and not left else 1


if __name__ == "__main__":
    sys.exit(main())
