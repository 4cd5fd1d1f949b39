"""Fixtures for the client tests: a `sleep` hook that records the waits (the emulator fixture:
tests/support/stack.py)."""

from __future__ import annotations

import pytest


class RecordingSleep:
    """A `sleep` hook for the client: records each wait and moves the emulator's clock by it,
    so the client waits the full Retry-After in the emulator's time without real sleeping."""

    def __init__(self, admin=None):
        self.admin = admin
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        if self.admin is not None:
            self.admin.advance_clock(seconds)


@pytest.fixture
def recording_sleep(emulator):
    return RecordingSleep(emulator.admin)
