"""Fixtures shared across the suites: the Dataverse emulator over real HTTP, a client without
client-side resends, a real webhook receiver for alerts, and the Dagster resources that point at
all of them. A pytest plugin: tests/conftest.py names it in `pytest_plugins`, so every test can ask
for these fixtures by name and no conftest imports them.

A test that needs the emulator started with other options says so with a marker:
`pytestmark = pytest.mark.emulator(seed_contacts=1)` (the keywords are `EmulatorOptions` fields)."""

from __future__ import annotations

import psycopg
import pytest

from mentor_pipeline.operations.alerts import AlertSink
from mentor_pipeline.resources import AppDatabase, SyncSettings, dynamics_resource_for
from tests.support.emulator import running_emulator
from tests.support.webhook import webhook_receiver


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "emulator(**options): start the `emulator` fixture with these EmulatorOptions fields"
    )


@pytest.fixture
def emulator(request):
    """A fresh emulator per test (fast: in-process uvicorn on a free loopback port)."""
    marker = request.node.get_closest_marker("emulator")
    with running_emulator(**(marker.kwargs if marker else {})) as handle:
        yield handle


@pytest.fixture
def connect(db_url):
    """What Drain takes: a factory of new connections to the test database."""
    return lambda: psycopg.connect(db_url)


@pytest.fixture
def client(emulator):
    # No client-side resends: a 5xx becomes a per-row FAILED at once, so the queue's own
    # retry/backoff is what the tests see.
    with emulator.client(max_retries=0, backoff_base=0.01, backoff_max=0.05) as dataverse:
        yield dataverse


@pytest.fixture
def webhook():
    with webhook_receiver() as receiver:
        yield receiver


@pytest.fixture
def alerts(webhook, db_url):
    return AlertSink(database_url=db_url, webhook_url=webhook.url)


def stack_resources(db_url, emulator, alerts, **sync_settings) -> dict:
    """Dagster resources on the test database, the emulator and the webhook, with short queue
    timings (`sync_settings` adds to or overrides them)."""
    settings = dict(lease_seconds=5, backoff_base_seconds=0.2, max_attempts=3)
    settings.update(sync_settings)
    return {
        "app_db": AppDatabase(url=db_url),
        "dynamics": dynamics_resource_for(emulator.settings()),
        "alerts": alerts,
        "sync_settings": SyncSettings(**settings),
    }
