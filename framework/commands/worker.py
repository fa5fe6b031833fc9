"""``ktf worker``: join the consumer group and run handlers until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse

from framework import eventloop
from framework.commands._common import add_connection_args, settings_from
from framework.config import Settings
from framework.observability.logging import configure_logging
from framework.registry import load_handlers
from framework.runtime.worker import Worker
from framework.serde import SchemaStore
from framework.supervisor import Supervisor, process_count

_D = Settings()


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "worker",
        help="run handlers as a member of a consumer group",
        description=(
            "Join the consumer group, consume the handlers' topics in batches and run "
            "each task in a bounded asyncio pool. SIGTERM/SIGINT drains in-flight tasks "
            "(--drain-timeout), commits and leaves the group; a second signal exits at once. "
            "With --processes N a supervisor runs N such workers (each a group member) and "
            "serves one /metrics, /healthz and /readyz for all of them."
        ),
    )
    p.add_argument(
        "--handlers",
        type=lambda s: tuple(x for x in s.split(",") if x),
        metavar="MOD[,MOD...]",
        help="handler modules to load (env KTF_HANDLERS); default: every plugin of the "
        "'framework.handlers' entry-point group",
    )
    p.add_argument(
        "--group-id",
        dest="group_id",
        help=f"consumer group (env KTF_GROUP_ID; default {_D.group_id})",
    )
    p.add_argument(
        "--group-instance-id",
        dest="group_instance_id",
        help="static membership id (env KTF_GROUP_INSTANCE_ID), e.g. the pod name",
    )
    p.add_argument(
        "--group-protocol",
        choices=("classic", "consumer"),
        help="'consumer' uses KIP-848 broker-side assignment (env KTF_GROUP_PROTOCOL)",
    )
    p.add_argument(
        "--schemas-dir",
        dest="schemas_dir",
        help=f"Avro schemas (env KTF_SCHEMAS_DIR; default {_D.schemas_dir})",
    )
    p.add_argument(
        "--max-in-flight",
        dest="max_in_flight",
        type=int,
        help=f"tasks running at once across handlers (env KTF_MAX_IN_FLIGHT; default "
        f"{_D.max_in_flight})",
    )
    p.add_argument(
        "--max-buffered",
        dest="max_buffered",
        type=int,
        help=f"records held before every partition pauses (env KTF_MAX_BUFFERED; default "
        f"{_D.max_buffered})",
    )
    p.add_argument(
        "--batch-size",
        dest="batch_size",
        type=int,
        help=f"records per consume call (env KTF_BATCH_SIZE; default {_D.batch_size})",
    )
    p.add_argument(
        "--drain-timeout",
        dest="drain_timeout",
        type=float,
        help=f"seconds to finish running tasks on SIGTERM (env KTF_DRAIN_TIMEOUT; default "
        f"{_D.drain_timeout:g})",
    )
    p.add_argument(
        "--metrics-port",
        dest="metrics_port",
        type=int,
        help=f"port of /metrics, /healthz and /readyz; 0 disables (env KTF_METRICS_PORT; "
        f"default {_D.metrics_port})",
    )
    p.add_argument(
        "--processes",
        metavar="N|auto",
        help="run N worker processes under a supervisor that restarts a crashed one and "
        "drains all on SIGTERM; auto = the usable cores (CPU affinity and cgroup quota). Each "
        "is a full worker with the settings here (its own in-flight limit, buffers and "
        "prefetch) and a group member with client id and group instance id suffixed -0, "
        f"-1, ... (env KTF_PROCESSES; default {_D.processes}: this process is the worker)",
    )
    p.add_argument(
        "--loop",
        choices=eventloop.LOOPS,
        help=f"event loop (env KTF_LOOP; default {_D.loop}; asyncio: the standard loop)",
    )
    p.add_argument(
        "--log-level",
        dest="log_level",
        help=f"DEBUG, INFO, WARNING, ERROR (env KTF_LOG_LEVEL; default {_D.log_level})",
    )
    p.add_argument("--log-format", dest="log_format", choices=("auto", "json", "console"))
    add_connection_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    processes = process_count(settings.processes)
    if processes > 1:
        # Each child loads the handlers itself; one that cannot stops the pod (exit 2).
        return Supervisor(settings, processes).run()
    # Fail fast, before connecting: bad modules, schemas or topic clashes are one line.
    registry = load_handlers(settings.handlers)
    store = SchemaStore.load([settings.schemas_dir])
    worker = Worker(settings, registry, schemas=store)
    return eventloop.run(worker.run(), settings.loop)
