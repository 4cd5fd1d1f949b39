"""Fixtures for reconciliation and force sync: real PostgreSQL, the Dataverse emulator over real
HTTP, a real webhook receiver for alerts, and short queue timings."""

from __future__ import annotations

import pytest

from tests.support.stack import alerts, client, connect, emulator, stack_resources, webhook

__all__ = ["alerts", "client", "connect", "emulator", "webhook"]


@pytest.fixture
def resources(db_url, emulator, alerts):
    return stack_resources(db_url, emulator, alerts)
