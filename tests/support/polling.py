"""Waiting for another thread or process to reach a state (never for a lease or backoff: those take a clock)."""

from __future__ import annotations

from mentor_pipeline.polling import wait_until


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.05):
    """Poll `predicate` until it returns something truthy (returned), or fail after `timeout` seconds."""
    return wait_until(predicate, timeout=timeout, interval=interval)
