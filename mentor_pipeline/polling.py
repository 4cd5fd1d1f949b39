"""One way to wait for another thread or process to reach a state: `wait_until` (the demo's
processes, the bench, the tests). Never for a lease or a backoff: those take a clock."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Hopeless(Exception):
    """Raised by a check that will not get better by waiting (e.g. a code location that failed to
    load): `wait_until` passes it on at once, even when other errors mean "not yet"."""


def wait_until(check: Callable[[], T], *, timeout: float, what: str = "the condition", interval: float = 0.05,
               errors_mean_not_yet: bool = False, process: subprocess.Popen | None = None) -> T:
    """Poll `check` until it returns something truthy, and return that. After `timeout` seconds
    a TimeoutError names `what` (and the last error of a check, when errors mean "not yet"); a
    `process` that exits meanwhile is a RuntimeError at once."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited early with code {process.returncode}")
        try:
            value = check()
            if value:
                return value
        except Hopeless:
            raise
        except Exception as exc:
            if not errors_mean_not_yet:
                raise
            last_error = exc
        if time.monotonic() > deadline:
            detail = f" (last error: {type(last_error).__name__}: {last_error})" if last_error else ""
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}{detail}")
        time.sleep(interval)
