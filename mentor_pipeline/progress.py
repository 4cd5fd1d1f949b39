"""Progress of a drain for a person watching: the break-glass commands' progress bar."""

from __future__ import annotations

from collections.abc import Callable

# (phase, done, total or None): phase is "read" (Dynamics listings) or "write" (updates sent).
Progress = Callable[[str, int, int | None], None]


class CountingClient:
    """Passes writes through to the Dynamics client and reports how many were sent."""

    def __init__(self, client, progress: Progress, total: int):
        self._client, self._progress, self._total, self._sent = client, progress, total, 0

    def apply_updates(self, updates):
        results = self._client.apply_updates(updates)
        self._sent += len(updates)
        # Rows queued while the drain runs can push past the estimate.
        self._progress("write", self._sent, max(self._total, self._sent))
        return results

    def __getattr__(self, name):
        return getattr(self._client, name)
