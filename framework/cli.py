"""The ``ktf`` command.

Each subcommand lives in its own module under ``framework.commands`` and exposes
``register(subparsers)``; this module only assembles them and turns framework
errors into one clear line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

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
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ktf",
        description="kafka-task-framework: run and operate distributed tasks on Apache Kafka.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
    except FrameworkError as exc:
        print(f"ktf: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
