"""``ktf dev kafka|registry up|down|status``: a local Kafka and schema registry for development."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from framework.devkafka import ClusterSpec, ClusterStatus, down, status, up
from framework.devkafka import registry as dev_registry
from framework.devkafka.cluster import DEFAULT_DOWN_TIMEOUT, DEFAULT_UP_TIMEOUT
from framework.devkafka.spec import DEFAULT_BASE_PORT, DEFAULT_HEAP, DEFAULT_KAFKA_VERSION


def register(subparsers: Any) -> None:
    """Add ``dev kafka {up,down,status}`` to the ``ktf`` parser."""
    dev = subparsers.add_parser("dev", help="development helpers (a local Kafka and registry)")
    dev_sub = dev.add_subparsers(dest="dev_command", metavar="TOOL")
    dev_sub.required = True
    kafka = dev_sub.add_parser(
        "kafka",
        help="run a local Apache Kafka (KRaft) from Maven Central jars",
        description="Run a local Apache Kafka (KRaft, no Docker). See docs/dev-kafka.md.",
    )
    actions = kafka.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    for name, help_text in (
        ("up", "start the cluster (no-op if it already runs) and wait until it serves"),
        ("down", "stop the cluster (SIGTERM, then SIGKILL after --timeout)"),
        ("status", "show nodes, pids, addresses and logs; exit 0 if all nodes are up, else 1"),
    ):
        p = actions.add_parser(name, help=help_text, description=help_text)
        _add_spec_args(p)
        if name == "up":
            p.add_argument(
                "--security",
                choices=("plaintext", "sasl_ssl"),
                default=None,
                help="plaintext (default), or sasl_ssl: SCRAM-SHA-512 over TLS with a CA and "
                "broker certificate generated under the state dir; prints where the client "
                "settings are (client.env, mode 0600), never the password",
            )
        if name in ("up", "down"):
            default = DEFAULT_UP_TIMEOUT if name == "up" else DEFAULT_DOWN_TIMEOUT
            p.add_argument(
                "--timeout",
                type=float,
                default=default,
                metavar="SECONDS",
                help=f"give up after this long (default {default:.0f})",
            )
        p.set_defaults(func=run)
    _register_registry(dev_sub)


def _register_registry(dev_sub: Any) -> None:
    """``dev registry {up,down,status}``: a local Apicurio Registry (Confluent API)."""
    reg = dev_sub.add_parser(
        "registry",
        help="run a local Apicurio Registry (Confluent-compatible API) from Maven Central",
        description="Run a local Apicurio Registry 3.x (needs Java 21+). See docs/wire-formats.md.",
    )
    actions = reg.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    for name, help_text in (
        ("up", "start the registry (no-op if it already runs) and wait until it serves"),
        ("down", "stop the registry (SIGTERM, then SIGKILL after --timeout)"),
        ("status", "show pid, url and log; exit 0 if it runs, else 1"),
    ):
        p = actions.add_parser(name, help=help_text, description=help_text)
        if name == "up":
            p.add_argument(
                "--port",
                type=int,
                default=dev_registry.DEFAULT_REGISTRY_PORT,
                help=f"HTTP port on 127.0.0.1 (default {dev_registry.DEFAULT_REGISTRY_PORT})",
            )
            p.add_argument(
                "--apicurio-version",
                default=dev_registry.DEFAULT_APICURIO_VERSION,
                metavar="VERSION",
                help="io.apicurio:apicurio-registry-app release, 3.x "
                f"(default {dev_registry.DEFAULT_APICURIO_VERSION})",
            )
        if name in ("up", "down"):
            default = (
                dev_registry.DEFAULT_UP_TIMEOUT
                if name == "up"
                else dev_registry.DEFAULT_DOWN_TIMEOUT
            )
            p.add_argument(
                "--timeout",
                type=float,
                default=default,
                metavar="SECONDS",
                help=f"give up after this long (default {default:.0f})",
            )
        p.set_defaults(func=run_registry)


def run_registry(args: argparse.Namespace) -> int:
    """Dispatch ``dev registry up``, ``down`` or ``status``; return the exit code."""
    if args.action == "up":
        url = dev_registry.registry_up(
            args.port, progress=_progress, timeout=args.timeout, version=args.apicurio_version
        )
        print(f"KTF_SCHEMA_REGISTRY_URL={url}")
        return 0
    if args.action == "down":
        before = dev_registry.registry_status()
        after = dev_registry.registry_down(timeout=args.timeout)
        if before.running:
            print(f"stopped the dev registry (pid {before.pid}) at {before.url}")
        else:
            print("dev registry was not running")
        return 1 if after.running else 0
    st = dev_registry.registry_status()
    if st.running:
        print(f"dev registry running: pid {st.pid}, url {st.url}, log {st.log_path}")
        return 0
    print(f"dev registry NOT running (state dir {st.state_dir})")
    return 1


def _add_spec_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--nodes",
        type=int,
        choices=(1, 3),
        default=None,
        help="1 node (RF 1) or 3 nodes (RF 3, min ISR 2); default 1, or what --state-dir "
        "was made with",
    )
    p.add_argument(
        "--base-port",
        type=int,
        default=None,
        metavar="PORT",
        help="client port of node 1; node i uses base+2*(i-1), its controller the next port "
        f"(default {DEFAULT_BASE_PORT}, or what --state-dir was made with)",
    )
    p.add_argument(
        "--state-dir",
        metavar="DIR",
        help="properties, data, logs and pid files (default "
        "$KTF_CACHE_DIR/dev-kafka/<nodes>n-<base-port>, KTF_CACHE_DIR defaults to ~/.cache/ktf)",
    )
    p.add_argument(
        "--kafka-version",
        default=DEFAULT_KAFKA_VERSION,
        metavar="VERSION",
        help=f"Apache Kafka release from Maven Central, 4.x (default {DEFAULT_KAFKA_VERSION})",
    )
    p.add_argument(
        "--heap",
        default=DEFAULT_HEAP,
        metavar="SIZE",
        help=f"JVM heap per node, -Xms/-Xmx (default {DEFAULT_HEAP})",
    )


def _layout(
    nodes: int | None, base_port: int | None, state_dir: str | None, security: str | None = None
) -> tuple[int, int, str]:
    """Flags first, then the layout an existing --state-dir records, then the defaults."""
    if state_dir and (nodes is None or base_port is None or security is None):
        recorded = Path(state_dir) / "cluster.spec"
        if recorded.exists():
            fields = dict(
                item.split("=", 1) for item in recorded.read_text().split() if "=" in item
            )
            if nodes is None and fields.get("nodes", "").isdigit():
                nodes = int(fields["nodes"])
            if base_port is None and fields.get("base_port", "").isdigit():
                base_port = int(fields["base_port"])
            if security is None:
                security = fields.get("security")
    return nodes or 1, base_port or DEFAULT_BASE_PORT, security or "plaintext"


def run(args: argparse.Namespace) -> int:
    """Dispatch ``up``, ``down`` or ``status``; return the process exit code."""
    nodes, base_port, security = _layout(
        args.nodes, args.base_port, args.state_dir, getattr(args, "security", None)
    )
    spec = ClusterSpec(
        nodes=nodes,
        base_port=base_port,
        kafka_version=args.kafka_version,
        state_dir=args.state_dir,
        heap=args.heap,
        security=security,
    )
    if args.action == "up":
        st = up(spec, progress=_progress, timeout=args.timeout)
        _print_status(st)
        return 0
    if args.action == "down":
        before = status(spec)
        st = down(spec, timeout=args.timeout)
        stopped = [n.node_id for n in before.nodes if n.alive]
        if stopped:
            print(f"stopped node(s) {', '.join(map(str, stopped))} at {spec.bootstrap_servers}")
        else:
            print(f"dev Kafka at {spec.bootstrap_servers} was not running")
        return 0 if not any(n.alive for n in st.nodes) else 1
    st = status(spec)
    _print_status(st)
    return 0 if st.running else 1


def _progress(line: str) -> None:
    print(line, flush=True)


def _print_status(st: ClusterStatus) -> None:
    state = "running" if st.running else "NOT running"
    if not st.running and any(n.alive for n in st.nodes):
        state = "PARTLY running"
    print(f"dev Kafka {state}: bootstrap servers {st.bootstrap_servers} (state dir {st.state_dir})")
    for n in st.nodes:
        pid = str(n.pid) if n.pid is not None else "-"
        alive = "up" if n.alive else "down"
        print(f"  node {n.node_id}  pid {pid:>7}  {n.address:<16} {alive:<5} log {n.log_path}")
    if st.client_env is not None:
        print(
            "  SASL_SSL (SCRAM-SHA-512, user ktf): client settings in "
            f"{st.client_env} (mode 0600); use them with: . {st.client_env}"
        )
    sys.stdout.flush()
