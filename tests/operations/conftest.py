"""Fixtures for the tests of mentor_pipeline/operations/ (incidents, alerts, the health check):
`sink`, the alert sink on the test database that posts to the webhook receiver (the shared
`alerts` fixture, tests/support/stack.py). test_health.py has its own `sink`, one per receiver."""

from __future__ import annotations

import pytest


@pytest.fixture
def sink(alerts):
    return alerts
