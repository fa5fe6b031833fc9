"""The @handler decorator and handler discovery."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from framework import HandlerLoadError, RetryPolicy, handler, load_handlers
from framework.registry import HandlerRegistry, spec_of


def test_decorator_attaches_a_spec_and_keeps_the_function() -> None:
    @handler(topic="tasks.x", schema="ktf.examples.WordCountTask", result_schema="a.B")
    async def fn(task: object, ctx: object) -> None:
        return None

    spec = spec_of(fn)
    assert spec is not None
    assert spec.fn is fn and spec.ordering == "key"
    assert spec.default_reply_topic == "tasks.x.reply"
    assert spec.dlq_topic == "tasks.x.dlq"


def test_topics_needed_lists_retry_tiers_dlq_and_reply() -> None:
    @handler(topic="t", schema="s", result_schema="r", retry=RetryPolicy(tiers=("5s", "1m")))
    async def fn(task: object, ctx: object) -> None:
        return None

    spec = spec_of(fn)
    assert spec is not None
    assert spec.topics_needed() == ["t", "t.retry.5s", "t.retry.1m", "t.dlq", "t.reply"]


def test_sync_function_is_refused() -> None:
    with pytest.raises(HandlerLoadError, match="must be an 'async def'"):

        @handler(topic="t", schema="s")
        def fn(task: object, ctx: object) -> None:  # type: ignore[type-var]
            return None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ordering": "fifo"}, "ordering must be one of"),
        ({"concurrency": 0}, "concurrency must be >= 1"),
        ({"timeout": -1.0}, "timeout must be > 0"),
        ({"topic": "has space"}, "not a valid topic name"),
    ],
)
def test_bad_declarations_name_the_topic(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"topic": "t", "schema": "s", **kwargs}
    with pytest.raises(HandlerLoadError, match=message):
        handler(**args)  # type: ignore[arg-type]


def test_two_handlers_for_one_topic_are_refused() -> None:
    @handler(topic="same", schema="s")
    async def a(task: object, ctx: object) -> None:
        return None

    @handler(topic="same", schema="s")
    async def b(task: object, ctx: object) -> None:
        return None

    sa, sb = spec_of(a), spec_of(b)
    assert sa is not None and sb is not None
    with pytest.raises(HandlerLoadError, match="'same' is claimed by two handlers"):
        HandlerRegistry([sa, sb])


def test_examples_module_loads_three_handlers() -> None:
    registry = load_handlers(["handlers.examples"])
    assert sorted(registry.topics) == ["tasks.divide", "tasks.fetch-url", "tasks.word-count"]


def test_entry_point_group_finds_the_examples() -> None:
    registry = load_handlers([], use_entry_points=True)
    assert "tasks.word-count" in registry.topics


def test_module_without_handlers_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "empty_plugin.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(HandlerLoadError, match="defines no @handler"):
        load_handlers(["empty_plugin"])
    sys.modules.pop("empty_plugin", None)


def test_retry_policy_rejects_tiers_out_of_order() -> None:
    from framework import ConfigError

    with pytest.raises(ConfigError, match="increasing"):
        RetryPolicy(tiers=("1m", "5s"))
