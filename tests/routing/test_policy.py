"""The error model and tier routing: pure logic, no broker."""

from __future__ import annotations

from typing import Any

import pytest

from framework.errors import (
    ConfigError,
    DecodeError,
    Reject,
    Retry,
    RoutingError,
    TaskExpired,
    TaskTimeout,
)
from framework.registry import HandlerRegistry, handler, spec_of
from framework.routing.policy import RetryPolicy
from framework.routing.retry import consumed_topics, next_hop, tier_index, tier_map


def _spec(policy: RetryPolicy) -> Any:
    @handler(topic="tasks.x", schema="ktf.examples.WordCountTask", retry=policy)
    async def fn(t: Any, ctx: Any) -> None:
        return None

    return spec_of(fn)


@pytest.mark.parametrize(
    ("exc", "retriable"),
    [
        (Retry("again"), True),
        (TaskTimeout("slow"), True),
        (RoutingError("no ack"), True),
        (Reject("never"), False),
        (DecodeError("bad bytes"), False),
        (TaskExpired("late"), False),
        (RuntimeError("unknown"), True),
        (ConnectionError("unknown"), True),
        (KeyboardInterrupt(), False),
    ],
)
def test_retriable_is_carried_by_the_exception_type(exc: BaseException, retriable: bool) -> None:
    assert RetryPolicy().is_retriable(exc) is retriable


def test_policy_non_retriable_makes_unknown_types_permanent() -> None:
    policy = RetryPolicy(non_retriable=(ValueError,))
    assert not policy.is_retriable(ValueError("bad input"))
    assert not policy.is_retriable(UnicodeDecodeError("utf-8", b"", 0, 1, "x"))  # a subclass
    assert policy.is_retriable(RuntimeError("transient"))
    # A framework error's own flag wins over the policy list.
    assert RetryPolicy(non_retriable=(Exception,)).is_retriable(Retry("again"))


def test_policy_rejects_non_exception_types() -> None:
    with pytest.raises(ConfigError, match="non_retriable"):
        RetryPolicy(non_retriable=("ValueError",))  # type: ignore[arg-type]


def test_next_hop_walks_the_tiers_then_returns_none() -> None:
    spec = _spec(RetryPolicy(tiers=("5s", "1m")))
    hop = next_hop(spec, "tasks.x", 1, now_ms=1_000)
    assert hop is not None and hop == ("tasks.x.retry.5s", "5s", 6_000)
    hop = next_hop(spec, "tasks.x.retry.5s", 2, now_ms=1_000)
    assert hop is not None and hop.topic == "tasks.x.retry.1m" and hop.not_before_ms == 61_000
    assert next_hop(spec, "tasks.x.retry.1m", 3, now_ms=1_000) is None


def test_retry_delay_longer_than_the_tier_wins() -> None:
    spec = _spec(RetryPolicy(tiers=("5s",)))
    hop = next_hop(spec, "tasks.x", 1, delay=30.0, now_ms=0)
    assert hop is not None and hop.not_before_ms == 30_000
    hop = next_hop(spec, "tasks.x", 1, delay=1.0, now_ms=0)
    assert hop is not None and hop.not_before_ms == 5_000


def test_unknown_tier_topic_falls_back_to_the_attempt_count() -> None:
    spec = _spec(RetryPolicy(tiers=("5s", "1m")))
    assert tier_index(spec, "tasks.x", 1) == -1
    assert tier_index(spec, "tasks.x.retry.1m", 9) == 1
    assert tier_index(spec, "tasks.x.retry.30s", 2) == 0  # removed tier, second delivery


def test_workers_consume_task_and_tier_topics() -> None:
    spec = _spec(RetryPolicy(tiers=("5s", "1m")))
    registry = HandlerRegistry([spec])
    assert consumed_topics(registry) == ["tasks.x", "tasks.x.retry.5s", "tasks.x.retry.1m"]
    assert tier_map(registry) == {"tasks.x.retry.5s": spec, "tasks.x.retry.1m": spec}
