"""Starting, stopping and inspecting the local KRaft cluster (``ktf dev kafka``).

Each node is one detached ``java kafka.Kafka`` process (its own session, so a
Ctrl-C in the shell that started it does not kill it) with a pid file and logs
in its directory under the cluster's state dir. ``up`` and ``down`` are
idempotent; every failure is one :class:`DevKafkaError` line naming the port,
node or log file concerned.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from framework.devkafka import procs, security
from framework.devkafka.jars import ensure_jars, require_tool
from framework.devkafka.properties import render_log4j2, render_properties
from framework.devkafka.spec import ClusterSpec, NodeSpec
from framework.errors import DevKafkaError

Progress = Callable[[str], None]

DEFAULT_UP_TIMEOUT = 120.0
DEFAULT_DOWN_TIMEOUT = 30.0
_TOOL_TIMEOUT = 120.0
_PROGRESS_EVERY = 5.0
_JAVA_VERSION_RE = re.compile(r'version "(\d+)(?:\.(\d+))?')


@dataclass(frozen=True)
class NodeStatus:
    """One node as found on disk and in the process table."""

    node_id: int
    pid: int | None
    address: str
    alive: bool
    log_path: Path


@dataclass(frozen=True)
class ClusterStatus:
    """What runs where. ``running`` is true only when every node is alive."""

    nodes: tuple[NodeStatus, ...]
    running: bool
    bootstrap_servers: str = ""
    state_dir: Path | None = None
    #: sasl_ssl clusters: the file with the client's KTF_* settings (mode 0600)
    client_env: Path | None = None


def status(spec: ClusterSpec) -> ClusterStatus:
    """Inspect pid files and processes; never starts or stops anything."""
    nodes = tuple(_node_status(n) for n in spec.node_specs)
    env = spec.root / "client.env"
    return ClusterStatus(
        nodes=nodes,
        running=all(n.alive for n in nodes),
        bootstrap_servers=spec.bootstrap_servers,
        state_dir=spec.root,
        client_env=env if spec.secured and env.exists() else None,
    )


def up(
    spec: ClusterSpec,
    progress: Progress = print,
    timeout: float = DEFAULT_UP_TIMEOUT,
) -> ClusterStatus:
    """Start the cluster (or the nodes of it that are down) and wait until it serves.

    A cluster that already runs is left alone: ``up`` only checks it is ready.
    """
    current = status(spec)
    if current.running:
        progress(f"dev Kafka already running at {spec.bootstrap_servers} (state: {spec.root})")
        _wait_ready(spec, {}, {}, progress, timeout)
        return status(spec)

    java = require_tool("java")
    _check_java_version(java)
    to_start = [n for n, st in zip(spec.node_specs, current.nodes, strict=True) if not st.alive]
    _check_ports(to_start)
    lib = ensure_jars(spec.kafka_version, progress)
    creds = _credentials(spec, java, progress)
    cluster_id = _prepare_state(spec, java, lib, creds)
    _format(spec, to_start, java, lib, cluster_id, progress, creds)

    progress(
        f"starting {len(to_start)} Kafka {spec.kafka_version} node(s) at "
        + ", ".join(n.address for n in to_start)
    )
    started: dict[int, subprocess.Popen[bytes]] = {}
    offsets: dict[Path, int] = {}
    try:
        for node in to_start:
            for path in (node.log_path, _stdout_path(node)):
                offsets[path] = procs.file_size(path)
            started[node.node_id] = _launch(spec, node, java, lib)
        _wait_ready(spec, started, offsets, progress, timeout)
    except BaseException:
        # A half-started cluster would make the next `up` report "already running".
        _stop([n for n in to_start if n.node_id in started], timeout=10.0)
        raise
    final = status(spec)
    progress(f"dev Kafka ready at {spec.bootstrap_servers} (logs: {spec.root}/node-*/logs/)")
    return final


def down(spec: ClusterSpec, timeout: float = DEFAULT_DOWN_TIMEOUT) -> ClusterStatus:
    """Stop every node: SIGTERM, wait up to ``timeout``, then SIGKILL. Idempotent."""
    _stop(list(spec.node_specs), timeout)
    return status(spec)


# -- internals -----------------------------------------------------------------


def _node_status(node: NodeSpec) -> NodeStatus:
    pid = procs.read_pid(node.pid_path)
    alive = pid is not None and procs.is_running(pid, str(node.properties_path))
    return NodeStatus(
        node_id=node.node_id,
        pid=pid if alive else None,
        address=node.address,
        alive=alive,
        log_path=node.log_path,
    )


def _stop(nodes: list[NodeSpec], timeout: float) -> None:
    pids: dict[int, str] = {}
    for node in nodes:
        pid = procs.read_pid(node.pid_path)
        if pid is not None and procs.is_running(pid, str(node.properties_path)):
            pids[pid] = str(node.properties_path)
    for pid in pids:
        procs.signal_pid(pid, signal.SIGTERM)
    left = procs.wait_gone(pids, timeout)
    for pid in left:
        procs.signal_pid(pid, signal.SIGKILL)
    left = procs.wait_gone(left, 10.0)
    if left:
        raise DevKafkaError(f"could not stop broker process(es) {sorted(left)} even with SIGKILL")
    for node in nodes:
        node.pid_path.unlink(missing_ok=True)
    # The kernel releases the listening sockets a moment after the process is gone;
    # an `up` right after `down` must find the ports free.
    deadline = time.monotonic() + 10.0
    for node in nodes:
        for port in (node.client_port, node.controller_port):
            while procs.port_in_use(port) and time.monotonic() < deadline:
                time.sleep(0.1)


def _check_java_version(java: str) -> None:
    try:
        out = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DevKafkaError(f"`{java} -version` failed: {exc}") from exc
    match = _JAVA_VERSION_RE.search(out.stderr + out.stdout)
    if match is None:
        return  # unknown format: let the JVM itself complain if it is too old
    major = int(match.group(1))
    if major == 1 and match.group(2):  # "1.8.0_392" style
        major = int(match.group(2))
    if major < 17:
        raise DevKafkaError(f"Kafka 4.x needs Java 17 or newer; {java} is Java {major}")


def _check_ports(nodes: list[NodeSpec]) -> None:
    for node in nodes:
        for port, role in ((node.client_port, "client"), (node.controller_port, "controller")):
            if procs.port_in_use(port):
                raise DevKafkaError(
                    f"port {port} ({role} port of node {node.node_id}) is already in use; "
                    "stop whatever listens there (a dev broker? `ktf dev kafka status`) "
                    "or pick another --base-port"
                )


def _credentials(spec: ClusterSpec, java: str, progress: Progress) -> security.Credentials | None:
    if not spec.secured:
        return None
    spec.root.mkdir(parents=True, exist_ok=True)
    _check_layout(spec)
    if not (spec.root / "credentials.json").exists():
        progress("generating a CA, a broker certificate and SCRAM-SHA-512 users (keytool)")
    return security.load_or_create(spec.root, java)


def _check_layout(spec: ClusterSpec) -> None:
    layout = spec.layout()
    if spec.spec_path.exists():
        recorded = spec.spec_path.read_text(encoding="utf-8").strip()
        if recorded != layout:
            raise DevKafkaError(
                f"state dir {spec.root} belongs to a cluster with {recorded}, not {layout}; "
                "use another --state-dir or delete that directory"
            )


def _prepare_state(
    spec: ClusterSpec, java: str, lib: Path, creds: security.Credentials | None = None
) -> str:
    """Create the state layout and return the cluster id (generated once per state dir)."""
    spec.root.mkdir(parents=True, exist_ok=True)
    layout = spec.layout()
    if spec.spec_path.exists():
        recorded = spec.spec_path.read_text(encoding="utf-8").strip()
        if recorded != layout:
            raise DevKafkaError(
                f"state dir {spec.root} belongs to a cluster with {recorded}, not {layout}; "
                "use another --state-dir or delete that directory"
            )
    else:
        spec.spec_path.write_text(layout + "\n", encoding="utf-8")
    for node in spec.node_specs:
        node.logs_dir.mkdir(parents=True, exist_ok=True)
        node.properties_path.write_text(render_properties(spec, node, creds), encoding="utf-8")
        if creds is not None:  # holds the broker's SCRAM and keystore passwords
            node.properties_path.chmod(0o600)
        (node.dir / "log4j2.properties").write_text(render_log4j2(), encoding="utf-8")
    if spec.cluster_id_path.exists():
        return spec.cluster_id_path.read_text(encoding="utf-8").strip()
    out = _run_tool(
        [java, "-cp", f"{lib}/*", "kafka.tools.StorageTool", "random-uuid"], "random-uuid"
    )
    cluster_id = out.strip().splitlines()[-1].strip()
    spec.cluster_id_path.write_text(cluster_id + "\n", encoding="utf-8")
    return cluster_id


def _format(
    spec: ClusterSpec,
    nodes: list[NodeSpec],
    java: str,
    lib: Path,
    cluster_id: str,
    progress: Progress,
    creds: security.Credentials | None = None,
) -> None:
    """Format the KRaft storage of nodes that were never formatted.

    A secured cluster's SCRAM users are created here (``--add-scram``), so the
    brokers can authenticate each other from their first start.
    """
    fresh = [n for n in nodes if not (n.data_dir / "meta.properties").exists()]
    if not fresh:
        return
    progress(
        f"formatting KRaft storage (cluster id {cluster_id}) for node(s) "
        + ", ".join(str(n.node_id) for n in fresh)
    )
    running: list[tuple[NodeSpec, subprocess.Popen[str]]] = []
    for node in fresh:
        # A half-formatted dir from an interrupted run would make format refuse.
        shutil.rmtree(node.data_dir, ignore_errors=True)
        cmd = [
            java,
            "-cp",
            f"{lib}/*",
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
            "-c",
            str(node.properties_path),
        ]
        if spec.nodes == 1:
            cmd.append("--standalone")
        if creds is not None:
            cmd += security.scram_arguments(creds)
        running.append(
            (
                node,
                subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True),
            )
        )
    for node, proc in running:
        try:
            out, _ = proc.communicate(timeout=_TOOL_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise DevKafkaError(
                f"formatting node {node.node_id} storage took over {_TOOL_TIMEOUT:.0f}s"
            ) from None
        if proc.returncode != 0:
            raise DevKafkaError(
                f"formatting node {node.node_id} storage ({node.data_dir}) failed: "
                f"{_last_line(out)}"
            )


def _run_tool(cmd: list[str], what: str) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=_TOOL_TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        raise DevKafkaError(f"StorageTool {what} took over {_TOOL_TIMEOUT:.0f}s") from exc
    if proc.returncode != 0:
        raise DevKafkaError(f"StorageTool {what} failed: {_last_line(proc.stderr + proc.stdout)}")
    return proc.stdout


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


def _stdout_path(node: NodeSpec) -> Path:
    """JVM-level output (crashes before log4j starts, GC warnings)."""
    return node.logs_dir / "stdout.log"


def _launch(spec: ClusterSpec, node: NodeSpec, java: str, lib: Path) -> subprocess.Popen[bytes]:
    cmd = [
        java,
        f"-Xms{spec.heap}",
        f"-Xmx{spec.heap}",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={node.dir / 'log4j2.properties'}",
        f"-Dkafka.logs.dir={node.logs_dir}",
        "-cp",
        f"{lib}/*",  # expanded by java, not a shell
        "kafka.Kafka",
        str(node.properties_path),
    ]
    with _stdout_path(node).open("ab") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=node.dir,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    procs.remember(proc)
    procs.write_pid(node.pid_path, proc.pid)
    return proc


def _wait_ready(
    spec: ClusterSpec,
    started: dict[int, subprocess.Popen[bytes]],
    offsets: dict[Path, int],
    progress: Progress,
    timeout: float,
) -> None:
    """Block until a metadata request lists every node as a broker, bounded by ``timeout``."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    next_report = t0 + _PROGRESS_EVERY
    nodes = {n.node_id: n for n in spec.node_specs}
    seen: set[int] = set()
    while True:
        for node_id, proc in started.items():
            code = proc.poll()
            if code is not None:
                node = nodes[node_id]
                why = procs.last_meaningful_line([node.log_path, _stdout_path(node)], offsets)
                raise DevKafkaError(
                    f"node {node_id} (pid {proc.pid}) exited with status {code} before it was "
                    f"ready: {why} (log: {node.log_path})"
                )
        if not started:  # already running: make sure the processes still are
            for st in status(spec).nodes:
                if not st.alive:
                    raise DevKafkaError(f"node {st.node_id} is not running; see {st.log_path}")
        if all(procs.accepts(n.client_port) for n in spec.node_specs):
            seen = _brokers_seen(spec, min(5.0, max(0.5, deadline - time.monotonic())))
            if seen >= set(nodes):
                return
        now = time.monotonic()
        if now >= deadline:
            missing = sorted(set(nodes) - seen)
            logs = ", ".join(str(nodes[i].log_path) for i in missing) or str(spec.root)
            raise DevKafkaError(
                f"timed out after {timeout:.0f}s waiting for broker(s) {missing} at "
                f"{spec.bootstrap_servers} to be ready; see {logs}"
            )
        if now >= next_report:
            progress(
                f"  waiting for {len(nodes)} broker(s) ({now - t0:.0f}s of {timeout:.0f}s, "
                f"{len(seen)} registered) ..."
            )
            next_report = now + _PROGRESS_EVERY
        time.sleep(0.5)


def _brokers_seen(spec: ClusterSpec, timeout: float) -> set[int]:
    """Broker ids in a metadata response, or an empty set if the request fails."""
    # Imported here: the CLI's `status`/`down` need no Kafka client at all.
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    from framework.config import Settings

    # Not Settings.load(): KTF_* variables describe the user's cluster, not this one.
    extra: dict[str, Any] = {}
    creds = security.load(spec.root) if spec.secured else None
    if creds is not None:
        extra = creds.client_settings()
    conf = Settings(bootstrap_servers=spec.bootstrap_servers, **extra).librdkafka("admin")
    admin = AdminClient(conf)
    try:
        md = admin.list_topics(timeout=timeout)
    except KafkaException:
        return set()
    return {int(b) for b in md.brokers}
