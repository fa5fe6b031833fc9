"""``ktf topics ensure``: create every topic the handlers need."""

from __future__ import annotations

import argparse

from framework import headers as h
from framework.commands._common import add_connection_args, settings_from
from framework.kafka.admin import KafkaAdmin, TopicSpec
from framework.observability.announce import WORKERS_TOPIC, workers_topic_config
from framework.registry import HandlerRegistry, load_handlers
from framework.scheduling.delay import CANCEL_WINDOW, delay_topics
from framework.scheduling.scheduler import scheduler_topics


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("topics", help="manage the topics handlers need")
    tsub = p.add_subparsers(dest="topics_command", metavar="ACTION")
    tsub.required = True
    e = tsub.add_parser(
        "ensure",
        help="create missing task, reply, retry, dead-letter and control topics",
        description=(
            "Create every topic the handlers need: task topics, <topic>.reply (when a "
            "handler declares a result), <topic>.retry.<tier>, <topic>.delay.<tier> (delayed "
            "tasks), <topic>.dlq, ktf.control, ktf.workers (worker announcements for "
            "`ktf top`) and the scheduler's ktf.leader, ktf.schedules and "
            "ktf.schedules.runs. Existing topics are left unchanged and reported."
        ),
    )
    e.add_argument(
        "--handlers",
        type=lambda s: tuple(x for x in s.split(",") if x),
        metavar="MOD[,MOD...]",
        help="handler modules (env KTF_HANDLERS); default: the entry-point plugins",
    )
    e.add_argument("--partitions", dest="topic_partitions", type=int, help="default 6")
    e.add_argument("--replication-factor", dest="topic_replication", type=int, help="default 1")
    e.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")
    add_connection_args(e)
    e.set_defaults(func=run_ensure)


def topic_specs(registry: HandlerRegistry, partitions: int, replication: int) -> list[TopicSpec]:
    names: list[str] = []
    for spec in registry.specs:
        names.extend(spec.topics_needed())
        names.extend(delay_topics(spec.topic))
    names.append(h.CONTROL_TOPIC)
    names.append(WORKERS_TOPIC)
    seen: dict[str, TopicSpec] = {}
    for name in names:
        if name in seen:
            continue
        config: dict[str, str] = {}
        parts = partitions
        if name == h.CONTROL_TOPIC:
            # Every worker reads all of it; short retention keeps replays cheap, but a
            # cancel must outlive the longest delay of a delayed task.
            parts = 1
            config = {"retention.ms": str(int(max(24 * 3600, CANCEL_WINDOW) * 1000))}
        elif name == WORKERS_TOPIC:
            # Workers announce themselves here for `ktf top --group` (compacted).
            parts, config = 1, workers_topic_config()
        seen[name] = TopicSpec(name, parts, replication, config)
    for extra in scheduler_topics(replication):
        seen.setdefault(extra.name, extra)
    return list(seen.values())


def run_ensure(args: argparse.Namespace) -> int:
    timeout = args.timeout
    del args.timeout
    settings = settings_from(args)
    registry = load_handlers(settings.handlers)
    specs = topic_specs(registry, settings.topic_partitions, settings.topic_replication)
    result = KafkaAdmin(settings).ensure_topics(specs, timeout=timeout)
    for name in result.created:
        print(f"created  {name}")
    for name in result.existing:
        print(f"exists   {name}")
    for name, actual in result.mismatched.items():
        print(f"warning  {name} has {actual} partitions (asked for {settings.topic_partitions})")
    print(f"{len(result.created)} created, {len(result.existing)} already existed")
    return 0
