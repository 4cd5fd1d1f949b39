"""A Dataverse (Dynamics 365) emulator held to Microsoft's documented behaviour.

Serves Entra ID's token endpoint, the Web API under /api/data/v9.2/, a public portal page at /,
and admin endpoints under /_admin/ (tests and demos only).
"""

from mentor_pipeline.emulator.admin import EmulatorAdmin
from mentor_pipeline.emulator.app import create_app
from mentor_pipeline.emulator.options import EmulatorOptions
from mentor_pipeline.emulator.server import EmulatorServer, run

__all__ = ["EmulatorAdmin", "EmulatorOptions", "EmulatorServer", "create_app", "run"]
