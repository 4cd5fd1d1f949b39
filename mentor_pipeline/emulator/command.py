"""The emulator's command line, beside the emulator: `python -m mentor_pipeline.emulator ...` and
`mentor-pipeline emulator ...` (mentor_pipeline/cli/emulator.py) both parse with `add_arguments`
and start it with `run_emulator`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from mentor_pipeline import arguments
from mentor_pipeline.emulator.options import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_TENANT_ID,
    EmulatorOptions,
)

DESCRIPTION = ("Serves Entra ID's token endpoint and the Dataverse Web API on one port, with "
               "service protection limits and a public page per chapter at /.")


class EmulatorUnavailable(RuntimeError):
    """The web server the emulator needs is not installed (a production install)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=arguments.port, default=8765, help="port (default 8765; 0 picks a free one)")
    parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
    parser.add_argument("--client-secret", default=os.environ.get("EMULATOR_CLIENT_SECRET", DEFAULT_CLIENT_SECRET),
                        help="the secret clients must present (default: $EMULATOR_CLIENT_SECRET or the demo secret;"
                             " prefer the variable, command lines are visible to other users)")
    parser.add_argument("--tenant-id", default=DEFAULT_TENANT_ID)
    parser.add_argument("--seed-contacts", type=arguments.whole(0), default=0, metavar="N",
                        help="start with N listed contacts m000001... (unless the state file has contacts)")
    parser.add_argument("--request-limit", type=arguments.whole(1), default=6000, metavar="N",
                        help="requests per user per 5-minute window (Dataverse's default 6000)")
    parser.add_argument("--concurrency-limit", type=arguments.whole(1), default=52, metavar="N")
    parser.add_argument("--token-lifetime", type=arguments.whole(1), default=3599, metavar="SECONDS")
    parser.add_argument("--state-file", metavar="PATH", help="load contacts from and save them to this JSON file")
    parser.add_argument("--portal-delay", type=arguments.seconds, default=0.0, metavar="SECONDS",
                        help="how long the public page lags Dataverse (Power Pages: up to 900)")
    parser.add_argument("--no-change-tracking", action="store_true",
                        help="start with Track changes off on the contact table (delta reads refused)")


def options_from(args: argparse.Namespace) -> EmulatorOptions:
    """The parsed flags as the emulator's typed options."""
    return EmulatorOptions(
        host=args.host, port=args.port, tenant_id=args.tenant_id, client_id=args.client_id,
        client_secret=args.client_secret, seed_contacts=args.seed_contacts, request_limit=args.request_limit,
        concurrency_limit=args.concurrency_limit, token_lifetime=args.token_lifetime,
        state_file=args.state_file, portal_delay=args.portal_delay, change_tracking=not args.no_change_tracking,
    )


def run_emulator(options: EmulatorOptions, announce: Callable[[str], None] = lambda line: print(line, flush=True)) -> int:
    try:
        from mentor_pipeline.emulator.server import run
    except ImportError as exc:  # a production install has no web server for the emulator
        raise EmulatorUnavailable(f"the emulator needs {exc.name}: install mentor_pipeline[demo]") from exc
    run(options, announce=announce)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mentor_pipeline.emulator", description=DESCRIPTION)
    add_arguments(parser)
    try:
        return run_emulator(options_from(parser.parse_args(argv)))
    except KeyboardInterrupt:
        return 130
    except EmulatorUnavailable as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 1
