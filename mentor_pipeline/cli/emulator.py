"""`mentor-pipeline emulator`: a local Dataverse + Entra ID stand-in for demos and tests."""

from __future__ import annotations

import argparse
import os

from mentor_pipeline.cli import CommandError
from mentor_pipeline.emulator.options import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_TENANT_ID,
    EmulatorOptions,
)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "emulator",
        help="run the Dataverse emulator (token endpoint, Web API, public page)",
        description="Serves Entra ID's token endpoint and the Dataverse Web API on one port, with "
                    "service protection limits and a public page per chapter at /.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=_whole(0, 65535), default=8765, help="port (default 8765; 0 picks a free one)")
    parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
    parser.add_argument("--client-secret", default=os.environ.get("EMULATOR_CLIENT_SECRET", DEFAULT_CLIENT_SECRET),
                        help="the secret clients must present (default: $EMULATOR_CLIENT_SECRET or the demo secret;"
                             " prefer the variable, command lines are visible to other users)")
    parser.add_argument("--tenant-id", default=DEFAULT_TENANT_ID)
    parser.add_argument("--seed-contacts", type=_whole(0), default=0, metavar="N",
                        help="start with N listed contacts m000001... (unless the state file has contacts)")
    parser.add_argument("--request-limit", type=_whole(1), default=6000, metavar="N",
                        help="requests per user per 5-minute window (Dataverse's default 6000)")
    parser.add_argument("--concurrency-limit", type=_whole(1), default=52, metavar="N")
    parser.add_argument("--token-lifetime", type=_whole(1), default=3599, metavar="SECONDS")
    parser.add_argument("--state-file", metavar="PATH", help="load contacts from and save them to this JSON file")
    parser.add_argument("--portal-delay", type=_seconds, default=0.0, metavar="SECONDS",
                        help="how long the public page lags Dataverse (Power Pages: up to 900)")
    parser.add_argument("--no-change-tracking", action="store_true",
                        help="start with Track changes off on the contact table (delta reads refused)")
    parser.set_defaults(func=run_command)


def _whole(low: int, high: int | None = None):
    """An argparse type: a whole number in [low, high], refused with a one-line reason."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low or (high is not None and value > high):
            bound = f"from {low} to {high}" if high is not None else f"{low} or more"
            raise argparse.ArgumentTypeError(f"{value} is out of range: give a whole number {bound}")
        return value
    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value < float("inf"):  # also refuses nan
        raise argparse.ArgumentTypeError(f"{text} is out of range: give 0 or more seconds")
    return value


def run_command(args: argparse.Namespace) -> int:
    try:
        from mentor_pipeline.emulator.server import run
    except ImportError as exc:  # a production install has no web server for the emulator
        raise CommandError(f"the emulator needs {exc.name}: install mentor_pipeline[demo]") from exc

    options = EmulatorOptions(
        host=args.host, port=args.port, tenant_id=args.tenant_id, client_id=args.client_id,
        client_secret=args.client_secret, seed_contacts=args.seed_contacts, request_limit=args.request_limit,
        concurrency_limit=args.concurrency_limit, token_lifetime=args.token_lifetime,
        state_file=args.state_file, portal_delay=args.portal_delay, change_tracking=not args.no_change_tracking,
    )
    run(options, announce=lambda line: print(line, flush=True))
    return 0
