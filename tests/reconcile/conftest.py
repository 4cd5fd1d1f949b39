"""Fixtures for reconciliation and force sync: real PostgreSQL, the Dataverse emulator over real
HTTP, a real webhook receiver for alerts, and short queue timings."""

from __future__ import annotations

import psycopg
import pytest

from mentor_pipeline.alerts import AlertSink
from mentor_pipeline.resources import AppDatabase, dynamics_resource_for
from mentor_pipeline.sync.assets import SyncSettings
from tests.support.emulator import running_emulator
from tests.support.webhook import webhook_receiver


@pytest.fixture
def emulator():
    with running_emulator() as handle:
        yield handle


@pytest.fixture
def connect(db_url):
    return lambda: psycopg.connect(db_url)


@pytest.fixture
def client(emulator):
    with emulator.client(max_retries=0, backoff_base=0.01, backoff_max=0.05) as dataverse:
        yield dataverse


@pytest.fixture
def webhook():
    with webhook_receiver() as receiver:
        yield receiver


@pytest.fixture
def alerts(webhook):
    return AlertSink(webhook_url=webhook.url)


@pytest.fixture
def resources(db_url, emulator, alerts):
    return {
        "app_db": AppDatabase(url=db_url),
        "dynamics": dynamics_resource_for(emulator.settings()),
        "alerts": alerts,
        "sync_settings": SyncSettings(lease_seconds=5, backoff_base_seconds=0.2, max_attempts=3),
    }
