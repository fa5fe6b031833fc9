"""``ktf schemas check``: fail on a breaking change between a schema and its history."""

from __future__ import annotations

import argparse
from typing import Any

from framework.serde import SchemaStore
from framework.serde.compat import COMPAT_MODES, Compat, check_store


def register(subparsers: Any) -> None:
    """Add ``schemas`` and its ``check`` subcommand."""
    parser = subparsers.add_parser("schemas", help="inspect and check the Avro schemas")
    sub = parser.add_subparsers(dest="schemas_command", metavar="ACTION")
    sub.required = True
    check = sub.add_parser(
        "check",
        help="check each schema against the versions it replaces (schemas/**/history/)",
        description=(
            "Parse every .avsc under the directories and compare each current schema "
            "with its history versions (<dir>/**/history/<Name>.v<N>.avsc) by the Avro "
            "schema resolution rules. Exit 0 when compatible, 1 on a breaking change "
            "(one line per problem), 2 when a schema does not parse."
        ),
    )
    check.add_argument(
        "--dir",
        dest="dirs",
        action="append",
        metavar="DIR",
        help="schema directory, repeatable (default: schemas)",
    )
    check.add_argument(
        "--compat",
        choices=COMPAT_MODES,
        default="backward",
        help="backward: the new schema reads old data (default); forward: old schemas "
        "read new data; full: both",
    )
    check.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the check; print problems (exit 1) or a summary line (exit 0)."""
    dirs = args.dirs or ["schemas"]
    mode: Compat = args.compat
    store = SchemaStore.load(dirs)
    problems, pairs = check_store(store, mode)
    for line in problems:
        print(line)
    schemas = len(store.names())
    if problems:
        print(f"FAILED: {len(problems)} incompatible change(s) ({mode}) in {', '.join(dirs)}")
        return 1
    print(
        f"ok: {schemas} schemas, {pairs} history version(s) compatible ({mode}) "
        f"in {', '.join(dirs)}"
    )
    return 0
