"""Fixtures for the drift watch: real PostgreSQL, the Dataverse emulator over real HTTP, a real
webhook receiver for alerts."""

from __future__ import annotations

from tests.support.stack import alerts, client, connect, emulator, webhook

__all__ = ["alerts", "client", "connect", "emulator", "webhook"]
