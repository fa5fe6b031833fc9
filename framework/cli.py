"""The ``ktf`` command.

Each subcommand lives in its own module under ``framework.commands`` and exposes
``register(subparsers)``; this module only assembles them and turns framework
errors into one clear line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence

from framework.errors import FrameworkError

# Order is the order of `ktf --help`.
COMMAND_MODULES: tuple[str, ...] = (
    "framework.commands.worker",
    "framework.commands.topics",
    "framework.commands.dev",
    "framework.commands.ops",
    "framework.commands.schemas",
    "framework.commands.send",
    "framework.commands.call",
    "framework.commands.tail",
    "framework.commands.cancel",
    "framework.commands.dlq",
    "framework.commands.schedules",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ktf",
        description="kafka-task-framework: run and operate distributed tasks on Apache Kafka.",
        epilog="Every command takes --bootstrap-servers (or KTF_BOOTSTRAP_SERVERS; default "
        "127.0.0.1:9092). `ktf COMMAND --help` for details.",
    )
    parser.add_argument("--version", action="version", version=f"ktf {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("kafka-task-framework")
    except PackageNotFoundError:
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return guarded(lambda: args.func(args))


def guarded(run: Callable[[], int | None]) -> int:
    """Run a command: a framework error is one line on stderr and exit code 2."""
    try:
        code = run()
    except FrameworkError as exc:
        print(f"ktf: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if os.environ.get("KTF_DEBUG"):
            raise
        print(
            f"ktf: internal error: {type(exc).__name__}: {exc} "
            "(set KTF_DEBUG=1 to see the traceback)",
            file=sys.stderr,
        )
        return 1
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
