"""Flags shared by subcommands, and turning them into :class:`Settings`."""

from __future__ import annotations

import argparse
from typing import Any

from framework.config import Settings


def add_connection_args(parser: argparse.ArgumentParser) -> None:
    """Flags every command that talks to Kafka accepts."""
    group = parser.add_argument_group("connection")
    group.add_argument(
        "--bootstrap-servers",
        dest="bootstrap_servers",
        metavar="HOST:PORT[,...]",
        help="Kafka bootstrap servers (env KTF_BOOTSTRAP_SERVERS; default 127.0.0.1:9092)",
    )
    group.add_argument(
        "--config",
        dest="config_file",
        metavar="FILE",
        help="TOML config file (env KTF_CONFIG_FILE); flags and KTF_* variables override it",
    )
    group.add_argument(
        "--kafka-opt",
        dest="kafka_opts",
        action="append",
        metavar="KEY=VALUE",
        help="extra librdkafka property, repeatable (e.g. --kafka-opt fetch.wait.max.ms=50)",
    )


def settings_from(args: argparse.Namespace, **extra: Any) -> Settings:
    """Build settings from parsed flags (None means: not given on the command line)."""
    overrides = {k: v for k, v in vars(args).items() if k not in ("func", "config_file")}
    opts = overrides.pop("kafka_opts", None)
    if opts:
        overrides["kafka_overrides"] = ",".join(opts)
    overrides.update(extra)
    return Settings.load(overrides, config_file=getattr(args, "config_file", None))
