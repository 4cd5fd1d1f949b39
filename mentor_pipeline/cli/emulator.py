"""`mentor-pipeline emulator`: a local Dataverse + Entra ID stand-in for demos and tests (its flags
live beside it, in mentor_pipeline/emulator/command.py)."""

from __future__ import annotations

from mentor_pipeline.cli import CommandError
from mentor_pipeline.emulator.command import DESCRIPTION, EmulatorUnavailable, add_arguments, options_from, run_emulator
from mentor_pipeline.emulator.options import EmulatorOptions


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "emulator", help="run the Dataverse emulator (token endpoint, Web API, public page)", description=DESCRIPTION)
    add_arguments(parser)
    parser.set_defaults(func=lambda args: run_command(options_from(args)))


def run_command(options: EmulatorOptions) -> int:
    try:
        return run_emulator(options)
    except EmulatorUnavailable as exc:
        raise CommandError(str(exc)) from None
