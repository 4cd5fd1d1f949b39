"""Fixtures for the incident tests: `sink`, the alert sink on the test database that posts to the
webhook receiver (the shared `alerts` fixture, tests/support/stack.py)."""

from __future__ import annotations

import pytest


@pytest.fixture
def sink(alerts):
    return alerts
