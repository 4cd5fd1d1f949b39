"""Run the Dataverse emulator for a test: `with running_emulator(seed_contacts=10) as emu: ...`.

The emulator runs in-process on a free 127.0.0.1 port (uvicorn in a background thread), so any
code that speaks HTTP (the client, a Dagster run in a subprocess, a browser) can reach `emu.url`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from mentor_pipeline.dynamics import DataverseClient, DynamicsSettings
from mentor_pipeline.emulator.admin import EmulatorAdmin
from mentor_pipeline.emulator.options import EmulatorOptions
from mentor_pipeline.emulator.server import EmulatorServer


@dataclass
class EmulatorHandle:
    url: str
    admin: EmulatorAdmin
    server: EmulatorServer
    options: EmulatorOptions

    def settings(self, **overrides) -> DynamicsSettings:
        """Settings that sign in to this emulator (override client_secret etc. to test failures)."""
        values = dict(url=self.url, authority=self.url, tenant_id=self.options.tenant_id,
                      client_id=self.options.client_id, client_secret=self.options.client_secret)
        values.update(overrides)
        return DynamicsSettings(**values)

    def env(self) -> dict[str, str]:
        """The DYNAMICS_* variables for a subprocess or monkeypatch.setenv."""
        s = self.settings()
        return {"DYNAMICS_URL": s.url, "DYNAMICS_AUTHORITY": s.authority, "DYNAMICS_TENANT_ID": s.tenant_id,
                "DYNAMICS_CLIENT_ID": s.client_id, "DYNAMICS_CLIENT_SECRET": s.client_secret}

    def client(self, **options) -> DataverseClient:
        settings_overrides = options.pop("settings", {})
        return DataverseClient(self.settings(**settings_overrides), **options)

    @property
    def emulator(self):
        """The in-process state (for assertions the HTTP admin API does not cover)."""
        return self.server.emulator


@contextlib.contextmanager
def running_emulator(**options) -> Iterator[EmulatorHandle]:
    """Options are `EmulatorOptions` fields: seed_contacts, request_limit, portal_delay, ..."""
    opts = EmulatorOptions(**options)
    server = EmulatorServer(opts).start()
    admin = EmulatorAdmin(server.url)
    try:
        yield EmulatorHandle(url=server.url, admin=admin, server=server, options=opts)
    finally:
        admin.close()
        server.stop()
