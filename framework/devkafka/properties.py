"""Rendering ``server.properties`` and the log4j2 configuration of a dev node.

Pure functions of the :class:`ClusterSpec`: unit tests check them without a JVM.
"""

from __future__ import annotations

from framework.devkafka.security import Credentials, broker_security_properties
from framework.devkafka.spec import LOOPBACK, ClusterSpec, NodeSpec

# Internal topics get few partitions: a dev broker hosts a handful of groups, and
# 50 partitions (the default) make the first group join on a fresh broker slow.
_INTERNAL_TOPIC_PARTITIONS = 10


def broker_properties(
    spec: ClusterSpec, node: NodeSpec, creds: Credentials | None = None
) -> dict[str, str]:
    """The broker configuration of ``node`` as an ordered key -> value mapping.

    With ``creds`` (a ``sasl_ssl`` cluster) the client listener is SASL_SSL and
    brokers talk to each other over it as the SCRAM user ``admin``.
    """
    rf = str(spec.replication_factor)
    isr = str(spec.min_insync_replicas)
    props: dict[str, str] = {
        # KRaft combined mode: every node is broker and controller.
        "process.roles": "broker,controller",
        "node.id": str(node.node_id),
        "listeners": (
            f"PLAINTEXT://{LOOPBACK}:{node.client_port},CONTROLLER://{LOOPBACK}:{node.controller_port}"
        ),
        "advertised.listeners": (
            f"PLAINTEXT://{LOOPBACK}:{node.client_port},CONTROLLER://{LOOPBACK}:{node.controller_port}"
        ),
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(node.data_dir),
        # Topics
        "num.partitions": "6",
        "default.replication.factor": rf,
        "min.insync.replicas": isr,
        # The framework creates its topics explicitly; a typo must not create one.
        "auto.create.topics.enable": "false",
        "delete.topic.enable": "true",
        # Consumer groups: tests should not wait 3 s for every first join.
        "group.initial.rebalance.delay.ms": "0",
        "offsets.topic.replication.factor": rf,
        "offsets.topic.num.partitions": str(_INTERNAL_TOPIC_PARTITIONS),
        # Transactions (exactly-once): the state log must be creatable on this cluster.
        "transaction.state.log.replication.factor": rf,
        "transaction.state.log.min.isr": isr,
        "transaction.state.log.num.partitions": str(_INTERNAL_TOPIC_PARTITIONS),
        # Share groups (KIP-932) keep their state in a topic of their own.
        "share.coordinator.state.topic.replication.factor": rf,
        "share.coordinator.state.topic.min.isr": isr,
        "share.coordinator.state.topic.num.partitions": str(_INTERNAL_TOPIC_PARTITIONS),
        # A small machine: fewer threads than the production defaults.
        "num.network.threads": "2",
        "num.io.threads": "4",
        "log.retention.hours": "24",
    }
    if creds is not None:
        props.update(broker_security_properties(creds, node.client_port, node.controller_port))
    if spec.nodes == 1:
        # Dynamic quorum, formatted with --standalone.
        props["controller.quorum.bootstrap.servers"] = f"{LOOPBACK}:{node.controller_port}"
    else:
        # Static quorum: every voter is known up front, formatted without --standalone.
        props["controller.quorum.voters"] = ",".join(
            f"{n.node_id}@{LOOPBACK}:{n.controller_port}" for n in spec.node_specs
        )
    return props


def render_properties(spec: ClusterSpec, node: NodeSpec, creds: Credentials | None = None) -> str:
    """``server.properties`` text for ``node``."""
    lines = [
        "# Written by `ktf dev kafka up`; rewritten on every start, edits are lost.",
        f"# Cluster: {spec.fingerprint()}",
    ]
    lines += [f"{k}={_escape(v)}" for k, v in broker_properties(spec, node, creds).items()]
    return "\n".join(lines) + "\n"


def render_log4j2() -> str:
    """log4j2 properties: a size-bounded ``server.log`` under ``-Dkafka.logs.dir``."""
    return """\
# Written by `ktf dev kafka up`.
status = warn
name = ktf-dev-kafka

appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.filePattern = ${sys:kafka.logs.dir}/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 20MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3

rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE

# The request log and the state-change log are very chatty at INFO.
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
"""


def _escape(value: str) -> str:
    # Java properties treat backslash as an escape character (Windows-style paths).
    return value.replace("\\", "\\\\")
