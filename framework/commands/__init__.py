"""Subcommands of ``ktf``: one module each, with ``register(subparsers)``."""
