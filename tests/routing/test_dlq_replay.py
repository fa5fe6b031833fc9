"""DLQ tooling against the real broker: list, show and replay; nothing is deleted."""

from __future__ import annotations

from typing import Any

import pytest

from framework import headers as h
from framework.cli import main
from framework.errors import Reject
from framework.registry import handler
from framework.routing import dlq
from framework.runtime.context import TaskContext
from framework.runtime.worker import Worker
from tests.routing.kafka_helpers import (
    Reader,
    ensure_topics,
    hdrs,
    produce,
    registry_of,
    run_with_worker,
    settings,
    task,
)

pytestmark = pytest.mark.broker


def test_replay_of_100_dead_letters_processes_all_and_keeps_the_dlq(
    kafka_bootstrap: str, unique: str, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = {"on": True}
    seen: list[dict[str, str]] = []

    @handler(
        topic=f"{unique}.tasks",
        schema="ktf.examples.WordCountTask",
        reply_topic=f"{unique}.reply",
        ordering="unordered",
    )
    async def picky(t: dict[str, Any], ctx: TaskContext) -> None:
        if broken["on"]:
            raise Reject("downstream rejected it")
        seen.append(dict(ctx.headers))

    registry = registry_of(picky)
    ensure_topics(kafka_bootstrap, registry, partitions=3)
    ids = [f"{unique}-{i}" for i in range(100)]
    produce(
        kafka_bootstrap, f"{unique}.tasks", [(i.encode(), task(i), {h.TASK_ID: i}) for i in ids]
    )
    s = settings(kafka_bootstrap, unique)
    dead = Reader(kafka_bootstrap, f"{unique}.tasks.dlq")
    replies = Reader(kafka_bootstrap, f"{unique}.reply")

    async def first_pass(worker: Worker) -> None:
        await dead.await_for(100, timeout=30)
        await replies.await_for(100, timeout=30)

    run_with_worker(s, registry, first_pass)

    # list and show (the CLI), filters on the library
    capsys.readouterr()  # drop the worker's log lines
    assert main(["dlq", "list", f"{unique}.tasks", "--bootstrap-servers", kafka_bootstrap]) == 0
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 100 and "Reject" in out
    assert "100 dead letters" in err
    first = dead.records[0]
    assert (
        main(
            [
                "dlq",
                "show",
                f"{unique}.tasks.dlq",
                "--partition",
                str(first.partition()),
                "--offset",
                str(first.offset()),
                "--schema",
                "ktf.examples.WordCountTask",
                "--bootstrap-servers",
                kafka_bootstrap,
            ]
        )
        == 0
    )
    out, _ = capsys.readouterr()
    assert "ktf-error-type: Reject" in out and '"text"' in out
    assert len(list(dlq.read(s, f"{unique}.tasks", dlq.DlqFilter(error_type="Nope")))) == 0
    assert len(list(dlq.read(s, f"{unique}.tasks", dlq.DlqFilter(count=7)))) == 7

    # dry run sends nothing
    assert (
        main(
            [
                "dlq",
                "replay",
                f"{unique}.tasks",
                "--dry-run",
                "--bootstrap-servers",
                kafka_bootstrap,
            ]
        )
        == 0
    )
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 100 and "would replay 100" in err

    broken["on"] = False
    replies_after = Reader(kafka_bootstrap, f"{unique}.reply")

    async def second_pass(worker: Worker) -> None:
        assert (
            main(
                [
                    "dlq",
                    "replay",
                    f"{unique}.tasks",
                    "--error-type",
                    "Reject",
                    "--bootstrap-servers",
                    kafka_bootstrap,
                ]
            )
            == 0
        )
        await replies_after.await_for(200, timeout=30)

    capsys.readouterr()
    run_with_worker(s, registry, second_pass)
    assert "replayed 100 dead letters" in capsys.readouterr().err
    ok = [hdrs(m) for m in replies_after.records[100:]]
    assert sorted(r[h.TASK_ID] for r in ok if r[h.STATUS] == "ok") == sorted(ids)
    assert len(seen) == 100
    for headers in seen:
        assert headers[h.ATTEMPT] == "1"
        assert headers[h.REPLAYED_FROM].startswith(f"{unique}.tasks.dlq/")
        assert h.ERROR_TYPE not in headers and h.NOT_BEFORE not in headers
    # Nothing was deleted from the dead-letter topic.
    assert len(list(dlq.read(s, f"{unique}.tasks"))) == 100
    for r in (dead, replies, replies_after):
        r.close()


def test_dlq_commands_name_a_missing_topic(
    kafka_bootstrap: str, unique: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dlq", "list", f"{unique}.none", "--bootstrap-servers", kafka_bootstrap]) == 2
    assert f"{unique}.none.dlq" in capsys.readouterr().err
