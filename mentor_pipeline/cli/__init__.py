"""`mentor-pipeline`: the operator's entry point.

Each subcommand lives in its own module with a `register(subparsers)` function that adds its
parser and sets `func` (Namespace -> exit code); the break-glass commands, `emulator` and `demo`
unpack the flags there and their handlers take typed values. Argument types shared by every
command line are in mentor_pipeline/arguments.py. Errors an operator can act on are one line.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Subcommand modules, in the order `--help` lists them.
COMMAND_MODULES = ["db", "mentor", "expiry", "sync", "reconcile", "force_sync", "incidents", "emulator", "demo"]


class CommandError(RuntimeError):
    """An error whose message is the whole story for the operator."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mentor-pipeline",
        description="Keeps HLF's public chapter website in sync with peer-mentor status.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"mentor_pipeline.cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one clear line, never a traceback, never a secret
        from mentor_pipeline.db.connection import first_line
        from mentor_pipeline.redaction import redact

        print(f"mentor-pipeline {args.command}: error: {redact(first_line(exc))}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
