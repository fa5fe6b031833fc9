"""A local Apache Kafka (KRaft, no Docker) for development and tests: ``ktf dev kafka``.

The broker jars come from Maven Central (cached under ``$KTF_CACHE_DIR``, default
``~/.cache/ktf``); the brokers run as detached ``java`` processes::

    from framework.devkafka import ClusterSpec, up, status, down

    spec = ClusterSpec(nodes=1, base_port=9092)
    up(spec, progress=print, timeout=120.0)   # idempotent
    status(spec).running
    down(spec, timeout=30.0)                  # idempotent

See docs/dev-kafka.md.
"""

from framework.devkafka.cluster import ClusterStatus, NodeStatus, down, status, up
from framework.devkafka.spec import ClusterSpec

__all__ = ["ClusterSpec", "ClusterStatus", "NodeStatus", "down", "status", "up"]
