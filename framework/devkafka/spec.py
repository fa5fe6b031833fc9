"""What a local development cluster looks like: nodes, ports and where its files live.

Everything here is pure: no processes, no network. The cluster manager
(:mod:`framework.devkafka.cluster`) and the properties renderer
(:mod:`framework.devkafka.properties`) both work from these values.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from framework.errors import DevKafkaError

DEFAULT_KAFKA_VERSION = "4.2.2"
DEFAULT_BASE_PORT = 9092
DEFAULT_HEAP = "512m"
LOOPBACK = "127.0.0.1"

_HEAP_RE = re.compile(r"^[1-9][0-9]*[kmgKMG]$")
_VERSION_RE = re.compile(r"^4\.[0-9]+\.[0-9]+$")


def cache_root() -> Path:
    """``$KTF_CACHE_DIR`` or ``~/.cache/ktf``: jars and cluster state live outside the repo."""
    raw = os.environ.get("KTF_CACHE_DIR")
    return Path(raw).expanduser() if raw else Path.home() / ".cache" / "ktf"


@dataclass(frozen=True)
class NodeSpec:
    """One combined broker + controller process of the cluster."""

    node_id: int
    client_port: int
    controller_port: int
    dir: Path

    @property
    def address(self) -> str:
        """``host:port`` clients connect to."""
        return f"{LOOPBACK}:{self.client_port}"

    @property
    def data_dir(self) -> Path:
        """``log.dirs`` of this node (the KRaft metadata log and topic data)."""
        return self.dir / "data"

    @property
    def properties_path(self) -> Path:
        return self.dir / "server.properties"

    @property
    def pid_path(self) -> Path:
        return self.dir / "kafka.pid"

    @property
    def log_path(self) -> Path:
        """The broker's stdout/stderr and log4j output."""
        return self.dir / "logs" / "server.log"

    @property
    def logs_dir(self) -> Path:
        return self.dir / "logs"


@dataclass(frozen=True)
class ClusterSpec:
    """The shape of a local Kafka cluster: ``nodes`` 1 or 3, ports from ``base_port`` up.

    Node ``i`` (1-based) listens for clients on ``base_port + 2*(i-1)`` and for the
    KRaft controller quorum on the port after it. ``state_dir`` ``None`` means
    ``$KTF_CACHE_DIR/dev-kafka/<nodes>n-<base_port>``.
    """

    nodes: int = 1
    base_port: int = DEFAULT_BASE_PORT
    kafka_version: str = DEFAULT_KAFKA_VERSION
    state_dir: Path | str | None = None
    heap: str = DEFAULT_HEAP
    #: "plaintext" or "sasl_ssl" (SCRAM-SHA-512 over TLS, see devkafka/security.py)
    security: str = "plaintext"

    def __post_init__(self) -> None:
        if self.nodes not in (1, 3):
            raise DevKafkaError(f"--nodes must be 1 or 3, got {self.nodes}")
        top = self.base_port + 2 * self.nodes - 1
        if self.base_port < 1024 or top > 65535:
            raise DevKafkaError(
                f"--base-port {self.base_port} gives ports {self.base_port}..{top}, "
                "outside 1024..65535"
            )
        if not _VERSION_RE.match(self.kafka_version):
            raise DevKafkaError(
                f"--kafka-version must be an Apache Kafka 4.x release such as 4.2.2, "
                f"got {self.kafka_version!r}"
            )
        if self.security not in ("plaintext", "sasl_ssl"):
            raise DevKafkaError(f"--security must be plaintext or sasl_ssl, got {self.security!r}")
        if not _HEAP_RE.match(self.heap):
            raise DevKafkaError(f"heap must look like 512m or 1g, got {self.heap!r}")

    @property
    def root(self) -> Path:
        """The cluster's state directory (properties, data, logs, pid files)."""
        if self.state_dir is not None:
            return Path(self.state_dir).expanduser().resolve()
        return cache_root() / "dev-kafka" / f"{self.nodes}n-{self.base_port}"

    @property
    def node_specs(self) -> tuple[NodeSpec, ...]:
        return tuple(
            NodeSpec(
                node_id=i,
                client_port=self.base_port + 2 * (i - 1),
                controller_port=self.base_port + 2 * (i - 1) + 1,
                dir=self.root / f"node-{i}",
            )
            for i in range(1, self.nodes + 1)
        )

    @property
    def bootstrap_servers(self) -> str:
        """Comma-separated client addresses of every node."""
        return ",".join(n.address for n in self.node_specs)

    @property
    def replication_factor(self) -> int:
        return 3 if self.nodes == 3 else 1

    @property
    def min_insync_replicas(self) -> int:
        return 2 if self.nodes == 3 else 1

    @property
    def cluster_id_path(self) -> Path:
        return self.root / "cluster.id"

    @property
    def spec_path(self) -> Path:
        """Records the spec the state dir was formatted with, to refuse a mismatch."""
        return self.root / "cluster.spec"

    def fingerprint(self) -> str:
        """What must not change between ``up`` runs on one state dir."""
        return f"{self.layout()} kafka={self.kafka_version}"

    def layout(self) -> str:
        """The ``cluster.spec`` line: nodes, ports and (when secured) the security mode."""
        line = f"nodes={self.nodes} base_port={self.base_port}"
        return line if self.security == "plaintext" else f"{line} security={self.security}"

    @property
    def secured(self) -> bool:
        return self.security != "plaintext"
