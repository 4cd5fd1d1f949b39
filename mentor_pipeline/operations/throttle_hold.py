"""The Dataverse 429 hold, shared by every process of the pipeline through the app database.

Dataverse's service-protection limits are per application user: a 429's `Retry-After` holds every
request of that user until it ends, and requests sent meanwhile are refused again and can extend
it. A client keeps the hold in memory (mentor_pipeline/dynamics/throttle.py); this records each
hold in `dynamics_throttle_holds` (supabase/schemas/20_queue.sql) and hands a recorded one to a
new client, so a run started after a throttled worker died, a break-glass command and a
reconciliation all wait it out instead of spending the budget again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

import psycopg

logger = logging.getLogger("mentor_pipeline.dynamics")

_AT = "coalesce(%s::timestamptz, now())"


class SharedHold:
    """Ties one client to the recorded hold of its budget: `adopt` before sending, and every
    hold the client meets is recorded (until `close`)."""

    def __init__(self, connect: Callable[[], psycopg.Connection], client, log: logging.Logger = logger,
                 clock: Callable[[], datetime | None] = lambda: None):
        self._connect = connect
        self._client = client
        self._log = log
        self._clock = clock
        self._own: set[datetime] = set()  # deadlines this process recorded: held in memory already
        # A stand-in transport (anything with `apply_updates`, as a Drain allows) holds nothing.
        self._shared = callable(getattr(client, "on_throttle", None)) and hasattr(client, "hold_requests")
        self._stop = client.on_throttle(self._record) if self._shared else (lambda: None)

    def adopt(self, conn: psycopg.Connection) -> float:
        """Hold the client for what is left of its budget's recorded hold; returns those seconds."""
        if not self._shared:
            return 0.0
        row = conn.execute(f"select seconds, what, hold_until from dynamics_hold_left(%s, {_AT})",
                           (self._client.budget, self._clock())).fetchone()
        if row is None or row[2] in self._own:
            return 0.0
        seconds, what, _ = row
        # The client logs a wait that extends its own (one this process recorded itself does not).
        self._client.hold_requests(seconds, f"{what}, recorded by another process")
        return seconds

    def _record(self, retry_after: float, _extends_by: float, what: str) -> None:
        # Called from the client's worker that got the 429; its own short connection, so the
        # record commits at once whatever the caller's connection is doing.
        try:
            with self._connect() as conn:
                conn.autocommit = True
                (until,) = conn.execute(f"select record_dynamics_hold(%s, %s, %s, {_AT})",
                                        (self._client.budget, retry_after, what, self._clock())).fetchone()
            if until is not None:
                self._own.add(until)
        except psycopg.Error as exc:  # the in-memory hold still holds this process
            self._log.warning("could not record the Dataverse hold in the database: %s", exc)

    def close(self) -> None:
        self._stop()

    def __enter__(self) -> SharedHold:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
