"""``ktf cancel TASK_ID``: ask every worker to cancel a task (via ``ktf.control``)."""

from __future__ import annotations

import argparse

from framework.commands._common import add_connection_args, settings_from
from framework.errors import ConfigError
from framework.kafka.producer import KafkaProducer
from framework.routing.control import send_cancel


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "cancel",
        help="cancel a task on whichever worker runs it (or skip it when it comes up)",
        description=(
            "Write a cancel command for TASK_ID to ktf.control. The worker running the "
            "task cancels it and replies 'cancelled'; a queued or later copy is skipped "
            "while workers remember the cancellation (1 hour, 100,000 ids; "
            "docs/failures.md)."
        ),
    )
    p.add_argument("task_id", metavar="TASK_ID", help="the task's ktf-task-id")
    p.add_argument("--reason", help="free text carried to the logs")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the broker")
    add_connection_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    task_id, reason, timeout = args.task_id, args.reason, args.timeout
    if not task_id.strip():
        raise ConfigError("TASK_ID must not be empty (it is the task's ktf-task-id header)")
    for name in ("task_id", "reason", "timeout"):
        delattr(args, name)
    producer = KafkaProducer(settings_from(args))
    producer.start()
    try:
        send_cancel(producer, task_id, reason, timeout=timeout)
    finally:
        producer.close(2.0)
    print(f"cancel sent for task {task_id}")
    return 0
