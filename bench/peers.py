"""ktf against what a Python team would pick instead, on one broker and one topic.

    .venv/bin/python bench/peers.py                  # 200,000 records, every case
    .venv/bin/python bench/peers.py --cases ktf-noop,raw --records 50000
    .venv/bin/python bench/peers.py --list

One pre-filled topic (200,000 small Avro records, 6 partitions, 1,000 keys), then one
case after the other, each in a fresh consumer group and in a process of its own
(so peak RSS and CPU time are the case's alone), each written the way its framework's
documentation does it and decoding with the same fastavro schema
(bench/peer_cases/_common.py):

  raw          confluent-kafka consume(500) + fastavro: the client's limit
  ktf-*        `ktf worker` with a no-op / 10 ms sleep handler (unordered), C=100 and
               C=1000, and `--processes 2`; the 1 ms CPU handler on executor="process"
               is listed and skipped until executors exist
  aiokafka-*   a bare aiokafka getmany() loop; asyncio tasks under a semaphore for sleeps
  quix-*       Quix Streams Application + StreamingDataFrame (sync, one record at a time)
  faststream-* FastStream KafkaBroker subscriber, per message and batch=True (500)
  faust-noop   faust-streaming agent

Each peer is installed by this script into its own virtual environment under
~/.cache/ktf/peers (versions pinned below and printed); a peer that cannot be
installed or run is reported and skipped. Times run from a case's first record to
its last. CPU is user+system time of the case's process tree over that window; peak
RSS is the sum of VmHWM over the tree. Sleep cases of frameworks that run one record
at a time stop after --case-seconds and report the rate so far.

Targets (from the performance issue) are printed as verdicts at the end. The figures
of a busy machine are noisy: compare ratios within one run, and re-run.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CASES_DIR = Path(__file__).resolve().parent / "peer_cases"
CACHE = Path(os.environ.get("KTF_PEERS_CACHE", Path.home() / ".cache" / "ktf" / "peers"))
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

#: Each peer's virtual environment: pinned requirements (fastavro as ktf's own).
#: The topic is lz4-compressed (ktf's producer default); aiokafka decompresses it with
#: cramjam, the package behind its `lz4` extra.
PEERS: dict[str, list[str]] = {
    "aiokafka": ["aiokafka==0.14.0", "cramjam==2.14.0"],
    "quix": ["quixstreams==3.28.1"],
    "faststream": ["faststream[kafka]==0.7.8", "cramjam==2.14.0"],
    "faust": ["faust-streaming==0.15.3", "cramjam==2.14.0"],
}
#: Distributions whose versions are printed for each environment.
SHOWN = {
    "ktf": ["kafka-task-framework", "confluent-kafka", "fastavro", "uvloop"],
    "aiokafka": ["aiokafka", "cramjam", "fastavro"],
    "quix": ["quixstreams", "confluent-kafka", "fastavro"],
    "faststream": ["faststream", "aiokafka", "cramjam", "fastavro", "pydantic"],
    "faust": ["faust-streaming", "aiokafka", "cramjam", "fastavro"],
}


@dataclass(frozen=True)
class Case:
    name: str
    env: str  # "ktf" (this checkout's .venv) or a key of PEERS
    workload: str  # noop | sleep | cpu
    concurrency: int = 1
    #: argv after the interpreter (a script in peer_cases), or None for `ktf worker`
    script: str | None = None
    processes: int = 1
    mode: str = ""
    skip: str = ""
    note: str = ""


CASES: list[Case] = [
    Case("raw", "ktf", "noop", script="raw_confluent.py", note="consume(500) + decode"),
    Case("ktf-noop", "ktf", "noop", concurrency=100),
    Case("ktf-sleep-c100", "ktf", "sleep", concurrency=100),
    Case("ktf-sleep-c1000", "ktf", "sleep", concurrency=1000),
    Case(
        "ktf-cpu1ms-process",
        "ktf",
        "cpu",
        concurrency=2,
        skip="executor='process' is not built yet: @handler accepts async def only",
    ),
    Case(
        "ktf-noop-processes2",
        "ktf",
        "noop",
        concurrency=100,
        processes=2,
        note="heartbeat.interval.ms=250; timed from when both processes have records",
    ),
    Case("aiokafka-noop", "aiokafka", "noop", script="aiokafka_loop.py", note="getmany loop"),
    Case(
        "aiokafka-sleep-c100",
        "aiokafka",
        "sleep",
        concurrency=100,
        script="aiokafka_loop.py",
        note="tasks + semaphore",
    ),
    Case(
        "aiokafka-sleep-c1000",
        "aiokafka",
        "sleep",
        concurrency=1000,
        script="aiokafka_loop.py",
        note="tasks + semaphore",
    ),
    Case("quix-noop", "quix", "noop", script="quix_app.py"),
    Case(
        "quix-sleep",
        "quix",
        "sleep",
        script="quix_app.py",
        note="sync time.sleep, one at a time",
    ),
    Case("faststream-noop", "faststream", "noop", script="faststream_app.py", mode="message"),
    Case(
        "faststream-batch-noop",
        "faststream",
        "noop",
        script="faststream_app.py",
        mode="batch",
        note="batch=True, max_records=500",
    ),
    Case("faust-noop", "faust", "noop", script="faust_app.py", note="agent, async for"),
]


@dataclass
class Outcome:
    case: Case
    records: int = 0
    seconds: float = 0.0
    cpu: float = 0.0
    rss: int = 0
    partial: bool = False
    error: str = ""

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Env:
    name: str
    python: str
    versions: dict[str, str] = field(default_factory=dict)
    error: str = ""


# -- environments ------------------------------------------------------------------------


def _versions(python: str, dists: list[str]) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        "for d in sys.argv[1:]:\n"
        "    try: out[d] = m.version(d)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))\n"
    )
    proc = subprocess.run(
        [python, "-c", code, *dists], capture_output=True, text=True, timeout=60, check=False
    )
    return json.loads(proc.stdout) if proc.returncode == 0 else {}


def prepare_env(name: str, fastavro_pin: str, reinstall: bool) -> Env:
    """The peer's virtual environment, created and installed on first use."""
    if name == "ktf":
        python = sys.executable
        return Env(name, python, _versions(python, SHOWN["ktf"]))
    pins = [*PEERS[name], fastavro_pin]
    digest = hashlib.sha256(" ".join(pins).encode()).hexdigest()[:10]
    home = CACHE / f"{name}-{digest}"
    python = str(home / "bin" / "python")
    marker = home / ".installed"
    if reinstall and home.exists():
        shutil.rmtree(home)
    if not marker.exists():
        print(f"installing {name} into {home}: {' '.join(pins)}", flush=True)
        for old in CACHE.glob(f"{name}-*"):  # environments of earlier pins
            shutil.rmtree(old, ignore_errors=True)
        steps = [
            [sys.executable, "-m", "venv", "--without-pip", str(home)],
            [
                sys.executable,
                "-m",
                "pip",
                "--python",
                python,
                "install",
                "-q",
                "--disable-pip-version-check",
                *pins,
            ],
        ]
        for cmd in steps:
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
            except subprocess.TimeoutExpired:
                return Env(name, python, error="installation took over 15 minutes")
            if proc.returncode != 0:
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
                return Env(name, python, error="cannot install: " + " | ".join(tail))
        marker.write_text(json.dumps(pins))
    return Env(name, python, _versions(python, SHOWN[name]))


# -- measuring a process tree ---------------------------------------------------------------


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICK


def _peak_rss(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) * 1024
    return total


def _stop_tree(proc: subprocess.Popen[bytes]) -> None:
    pids = _tree(proc.pid)
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(20)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


# -- running one case -----------------------------------------------------------------------


def _command(case: Case, env: Env, group: str) -> list[str]:
    if case.script is not None:
        return [env.python, str(CASES_DIR / case.script)]
    ktf = str(Path(env.python).parent / "ktf")
    cmd = [
        ktf,
        "worker",
        "--handlers",
        "ktf_handlers",
        "--group-id",
        group,
        "--metrics-port",
        "0",
        "--log-level",
        "WARNING",
        "--max-in-flight",
        str(max(case.concurrency, 1000)),
    ]
    if case.processes > 1:
        # librdkafka's default 3 s heartbeats make a fresh two-member group take ~6 s
        # to settle (a cooperative rebalance is two rounds, each noticed on a
        # heartbeat): on a pre-filled topic one process would have done the work by then.
        cmd += ["--processes", str(case.processes), "--kafka-opt", "heartbeat.interval.ms=250"]
    return cmd


def run_case(case: Case, env: Env, args: argparse.Namespace, topic: str, logs: Path) -> Outcome:
    group = f"bench-peers-{case.name}-{uuid.uuid4().hex[:6]}"
    report_dir = Path(tempfile.mkdtemp(prefix="ktf-peers-"))
    path = str(report_dir / "r.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    environ = dict(
        os.environ,
        BENCH_TOPIC=topic,
        BENCH_GROUP=group,
        BENCH_BOOTSTRAP=args.bootstrap_servers,
        BENCH_RECORDS=str(args.records),
        BENCH_WORKLOAD=case.workload,
        BENCH_CONCURRENCY=str(case.concurrency),
        BENCH_MODE=case.mode,
        BENCH_REPORT=path,
        PYTHONPATH=str(CASES_DIR),
        PYTHONUNBUFFERED="1",
        KTF_BOOTSTRAP_SERVERS=args.bootstrap_servers,
        KTF_SCHEMAS_DIR=str(ROOT / "schemas"),
    )
    if case.processes > 1:
        environ["BENCH_SHARED"] = "1"
    log_path = logs / f"{case.name}.log"
    out = Outcome(case)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            _command(case, env, group), cwd=CASES_DIR, env=environ, stdout=log, stderr=log
        )
    try:
        out = _watch(case, proc, sock, args)
    finally:
        _stop_tree(proc)
        sock.close()
        shutil.rmtree(report_dir, ignore_errors=True)
    if out.error:
        tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
        out.error += (" | " + " | ".join(tail)) if tail else ""
        out.error += f" (log: {log_path})"
    return out


def _watch(
    case: Case, proc: subprocess.Popen[bytes], sock: socket.socket, args: argparse.Namespace
) -> Outcome:
    """Follow a case's progress reports; measure from its first record to its last.

    With several processes the window opens when the last of them has its first
    record (so the time one process needs to join the group after another is not
    counted), and the records finished before that are left out of the rate.
    """
    out = Outcome(case)
    per_pid: dict[int, dict[str, Any]] = {}
    started = time.monotonic()
    opened = False
    cpu0, count0, t0 = 0.0, 0, 0.0
    window_end = 0.0
    sock.settimeout(0.2)
    while True:
        if proc.poll() is not None:
            out.error = f"exited with code {proc.returncode} before the last record"
            return out
        if not opened and time.monotonic() - started > args.startup_timeout:
            out.error = (
                f"{len(per_pid)} of {case.processes} processes had records within "
                f"{args.startup_timeout:.0f} s of starting"
            )
            return out
        try:
            msg = json.loads(sock.recv(4096))
        except TimeoutError:
            msg = None
        if msg is not None:
            per_pid[msg["pid"]] = msg
            if not opened and len(per_pid) >= case.processes:
                opened = True
                cpu0 = _cpu_seconds(_tree(proc.pid))
                # The others' counts are at most one report (20 ms) old.
                count0 = sum(m["count"] for m in per_pid.values()) - msg["count"]
                t0 = msg["first"]
                window_end = time.monotonic() + args.case_seconds
        total = sum(m["count"] for m in per_pid.values())
        done = total >= args.records or any(m["kind"] == "done" for m in per_pid.values())
        if opened and (done or time.monotonic() >= window_end):
            pids = _tree(proc.pid)
            out.cpu = _cpu_seconds(pids) - cpu0
            out.rss = _peak_rss(pids)
            out.records = total - count0
            out.partial = not done
            last = max(m["last"] for m in per_pid.values())
            out.seconds = max(last - t0, 1e-6)
            return out


# -- the topic --------------------------------------------------------------------------------


def prefill(bootstrap: str, topic: str, records: int, partitions: int) -> None:
    """The topic of bench/throughput.py: the same records, keys and compression."""
    sys.path.insert(0, str(CASES_DIR))
    from _common import SCHEMA
    from throughput import SCHEMA as THROUGHPUT_SCHEMA
    from throughput import prefill as fill

    assert SCHEMA == THROUGHPUT_SCHEMA, "bench/peer_cases/_common.py and throughput.py differ"
    fill(bootstrap, topic, records, partitions)


# -- report -----------------------------------------------------------------------------------


def _by_name(results: list[Outcome]) -> dict[str, Outcome]:
    return {r.case.name: r for r in results if not r.error and not r.case.skip and r.seconds}


def table(results: list[Outcome]) -> list[str]:
    ok = _by_name(results)
    raw = ok.get("raw")
    best: dict[tuple[str, int], float] = {}
    for r in ok.values():
        if r.case.env not in ("ktf",):
            key = (r.case.workload, r.case.concurrency if r.case.workload == "sleep" else 0)
            best[key] = max(best.get(key, 0.0), r.rate)
    rows = [
        "| case | records/s | vs raw | vs best peer | CPU µs/record | peak RSS MiB | note |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        c = r.case
        if c.skip:
            rows.append(f"| {c.name} | skipped | | | | | {c.skip} |")
            continue
        if r.error:
            rows.append(f"| {c.name} | failed | | | | | {r.error[:160]} |")
            continue
        key = (c.workload, c.concurrency if c.workload == "sleep" else 0)
        if c.workload == "sleep" and c.env in ("quix",):
            key = ("sleep", 100)  # one at a time: shown beside the C=100 figures
        peer = best.get(key)
        vs_raw = f"{r.rate / raw.rate:.2f}" if raw and c.workload == "noop" else "-"
        vs_peer = f"{r.rate / peer:.2f}" if peer else "-"
        note = c.note
        if c.workload == "sleep" and c.env != "quix":
            note = (note + "; " if note else "") + f"{r.rate / (c.concurrency / 0.01):.2f} of C/L"
        if r.partial:
            note = (note + "; " if note else "") + f"partial: {r.records:,} in {r.seconds:.0f} s"
        rows.append(
            f"| {c.name} | {r.rate:,.0f} | {vs_raw} | {vs_peer} | "
            f"{r.cpu / max(r.records, 1) * 1e6:.1f} | {r.rss / 2**20:.0f} | {note} |"
        )
    return rows


def verdicts(results: list[Outcome]) -> list[str]:
    ok = _by_name(results)

    def rate(name: str) -> float | None:
        r = ok.get(name)
        return r.rate if r else None

    lines = []

    def check(what: str, value: float | None, target: float, unit: str = "x") -> None:
        if value is None:
            lines.append(f"- {what}: not measured")
            return
        verdict = "met" if value >= target else "NOT met"
        fmt = f"{value:,.0f}/s" if unit == "/s" else f"{value:.2f}x"
        goal = f"{target:,.0f}/s" if unit == "/s" else f"{target:.2f}x"
        lines.append(f"- {what}: {fmt} (target >= {goal}): {verdict}")

    def ratio(a: str, b: str) -> float | None:
        ra, rb = rate(a), rate(b)
        return ra / rb if ra and rb else None

    check("no-op, one process vs raw", ratio("ktf-noop", "raw"), 0.6)
    check("no-op vs Quix Streams", ratio("ktf-noop", "quix-noop"), 2.0)
    check("no-op vs bare aiokafka loop", ratio("ktf-noop", "aiokafka-noop"), 1.2)
    c100 = rate("ktf-sleep-c100")
    check("10 ms sleep, C=100, of C/L", c100 / 10_000 if c100 else None, 0.9)
    check("10 ms sleep, C=1000", rate("ktf-sleep-c1000"), 60_000, "/s")
    check("10 ms sleep, C=1000 vs aiokafka", ratio("ktf-sleep-c1000", "aiokafka-sleep-c1000"), 2.0)
    check("--processes 2 no-op vs one process", ratio("ktf-noop-processes2", "ktf-noop"), 1.6)
    cpu = ok.get("ktf-cpu1ms-process")
    if cpu is None:
        lines.append(
            "- 1 ms CPU handler, executor='process', concurrency 2 (target >= 1,700/s): "
            "not measured (skipped: executors are not built yet)"
        )
    else:
        check("1 ms CPU handler, executor='process', C=2", cpu.rate, 1_700, "/s")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument(
        "--bootstrap-servers", default=os.environ.get("KTF_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    parser.add_argument("--cases", help="comma-separated case names (default: all); see --list")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--topic", help="reuse a pre-filled topic instead of creating one")
    parser.add_argument(
        "--case-seconds",
        type=float,
        default=60.0,
        help="longest measuring window of a case; slower cases report the rate so far",
    )
    parser.add_argument("--startup-timeout", type=float, default=90.0)
    parser.add_argument("--reinstall", action="store_true", help="recreate the peer venvs")
    parser.add_argument("--markdown", help="also write the table and verdicts to this file")
    args = parser.parse_args()
    if args.list:
        for c in CASES:
            print(f"{c.name:<24} {c.env:<11} {c.skip or c.note}")
        return
    wanted = set(args.cases.split(",")) if args.cases else None
    cases = [c for c in CASES if wanted is None or c.name in wanted]
    if wanted and len(cases) != len(wanted):
        known = {c.name for c in CASES}
        raise SystemExit(f"unknown cases: {', '.join(sorted(wanted - known))} (see --list)")

    from importlib.metadata import version

    fastavro_pin = f"fastavro=={version('fastavro')}"
    envs: dict[str, Env] = {}
    for name in dict.fromkeys(c.env for c in cases if not c.skip):
        envs[name] = prepare_env(name, fastavro_pin, args.reinstall)
        e = envs[name]
        shown = ", ".join(f"{k} {v}" for k, v in e.versions.items())
        print(f"env {name}: {e.error or shown}", flush=True)

    topic = args.topic or f"bench.peers.{uuid.uuid4().hex[:8]}"
    if not args.topic:
        t0 = time.perf_counter()
        prefill(args.bootstrap_servers, topic, args.records, args.partitions)
        print(
            f"prefilled {args.records:,} records on {topic} ({args.partitions} partitions) "
            f"in {time.perf_counter() - t0:.1f} s",
            flush=True,
        )
    load = os.getloadavg()
    print(f"cores={os.cpu_count()} load average={load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    logs = Path(tempfile.mkdtemp(prefix="ktf-peers-logs-"))
    results: list[Outcome] = []
    for case in cases:
        env = envs.get(case.env)
        if case.skip:
            print(f"{case.name:<24} skipped: {case.skip}", flush=True)
            results.append(Outcome(case))
            continue
        assert env is not None
        if env.error:
            results.append(Outcome(case, error=f"{case.env} unavailable: {env.error}"))
            print(f"{case.name:<24} skipped: {env.error}", flush=True)
            continue
        r = run_case(case, env, args, topic, logs)
        results.append(r)
        if r.error:
            print(f"{case.name:<24} failed: {r.error}", flush=True)
        else:
            print(
                f"{case.name:<24} {r.rate:>10,.0f} rec/s  {r.seconds:6.2f} s  "
                f"CPU {r.cpu / max(r.records, 1) * 1e6:6.1f} µs/rec  "
                f"peak RSS {r.rss / 2**20:6.1f} MiB" + ("  (partial)" if r.partial else ""),
                flush=True,
            )
    load = os.getloadavg()
    lines = [
        f"{args.records:,} records, {args.partitions} partitions, cores={os.cpu_count()}, "
        f"load average after the run {load[0]:.1f}",
        "",
        *table(results),
        "",
        "Targets:",
        *verdicts(results),
        "",
        "Versions: "
        + "; ".join(
            f"{n}: " + ", ".join(f"{k} {v}" for k, v in e.versions.items())
            for n, e in envs.items()
            if not e.error
        ),
    ]
    print()
    print("\n".join(lines))
    print(f"\ncase logs: {logs}")
    if args.markdown:
        Path(args.markdown).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
