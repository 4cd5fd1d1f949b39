"""Fixtures for reconciliation and force sync: real PostgreSQL, the Dataverse emulator over real
HTTP, a real webhook receiver for alerts (tests/support/stack.py), and short queue timings."""

from __future__ import annotations

import pytest

from tests.support.stack import stack_resources


@pytest.fixture
def resources(db_url, emulator, alerts):
    return stack_resources(db_url, emulator, alerts)
