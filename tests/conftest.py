"""Session-wide fixtures: one real Kafka broker for the whole run, unique names per test.

The broker is the one at ``KTF_BOOTSTRAP_SERVERS`` when that is set; otherwise the
local development broker (``ktf dev kafka up``) is started if it is not running,
and stopped at the end only if this session started it.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator

import pytest


def _broker_reachable(bootstrap: str) -> bool:
    from confluent_kafka.admin import AdminClient

    try:
        md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=5)
    except Exception:
        return False
    return bool(md.brokers)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap servers of a real, running Kafka broker."""
    configured = os.environ.get("KTF_BOOTSTRAP_SERVERS")
    if configured:
        if not _broker_reachable(configured):
            pytest.fail(f"KTF_BOOTSTRAP_SERVERS={configured} is set but no broker answers there")
        yield configured
        return
    from framework.devkafka import ClusterSpec, down, up
    from framework.devkafka.spec import cache_root

    default = ClusterSpec(nodes=1)
    if _broker_reachable(default.bootstrap_servers):
        # A developer's broker (`ktf dev kafka up`) is already there: share it.
        yield default.bootstrap_servers
        return
    # Otherwise a broker of the test session's own, on fresh storage, so a run never
    # depends on what earlier runs left behind.
    state = cache_root() / "dev-kafka" / "pytest-1n-9092"
    shutil.rmtree(state, ignore_errors=True)
    spec = ClusterSpec(nodes=1, state_dir=state)
    st = up(spec, progress=lambda line: print(f"[dev kafka] {line}"), timeout=180.0)
    try:
        yield st.bootstrap_servers or spec.bootstrap_servers
    finally:
        if not os.environ.get("KTF_KEEP_BROKER"):
            down(spec)


@pytest.fixture
def unique(request: pytest.FixtureRequest) -> str:
    """A short unique prefix for this test's topics and consumer groups."""
    name = request.node.name.split("[")[0].replace("test_", "")[:24].replace("_", "-")
    return f"t-{name}-{uuid.uuid4().hex[:8]}"
