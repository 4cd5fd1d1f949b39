"""Fixtures for the incident tests: the shared webhook receiver and an alert sink on the test
database that posts to it (tests/support/stack.py)."""

from __future__ import annotations

import pytest

from tests.support.stack import alerts, webhook

__all__ = ["alerts", "sink", "webhook"]


@pytest.fixture
def sink(alerts):
    return alerts
