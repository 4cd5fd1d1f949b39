"""Fixtures for the website sync: real PostgreSQL, the Dataverse emulator over real HTTP,
and small leases/backoffs so the whole suite stays fast."""

from __future__ import annotations

import psycopg
import pytest

from tests.support.emulator import running_emulator


@pytest.fixture
def emulator():
    with running_emulator() as handle:
        yield handle


@pytest.fixture
def connect(db_url):
    """What drain_queue takes: a factory of new connections to the test database."""
    return lambda: psycopg.connect(db_url)


@pytest.fixture
def client(emulator):
    # No client-side resends: a 5xx becomes a per-row FAILED at once, so the queue's own
    # retry/backoff is what the tests see.
    with emulator.client(max_retries=0, backoff_base=0.01, backoff_max=0.05) as dataverse:
        yield dataverse
