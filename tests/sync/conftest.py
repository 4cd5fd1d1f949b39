"""Fixtures for the website sync: real PostgreSQL, the Dataverse emulator over real HTTP,
a webhook receiver for alerts, and small leases/backoffs so the whole suite stays fast."""

from __future__ import annotations

from tests.support.stack import alerts, client, connect, emulator, webhook

__all__ = ["alerts", "client", "connect", "emulator", "webhook"]
