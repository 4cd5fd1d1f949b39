"""The emulator's clock. Tests move it forward instead of sleeping (`/_admin/clock`)."""

from __future__ import annotations

import time


class Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        """Seconds on a monotonic scale: windows, token lifetimes, portal delay."""
        return time.monotonic() + self.offset

    def wall(self) -> float:
        """Unix time, shifted the same way, for timestamps people read."""
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds
