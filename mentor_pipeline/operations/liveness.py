"""Whether the worker of a run that holds the Dynamics budget is still alive.

With Dagster's default run launcher, run workers are children of the code server, and the launcher
cannot tell whether one is alive: when the daemon's host or process group dies mid-run (a reboot,
an OOM kill, a container restart, a deploy) the run stays STARTED in Dagster's storage, holds the
`mentor_pipeline/dynamics` slot (one Dynamics run at a time) and keeps the next drain queued. So
such a run beats a heartbeat into the app database (`run_heartbeats`, supabase/schemas/20_queue.sql)
every few seconds from its own process, whatever launcher started it; `dead_run_sensor` fails a
STARTED run whose heartbeat has been silent for SILENT_AFTER, with the reason in the UI, and the
next drain starts. The changes the dead run had claimed come back when their leases end, so two
live drains never write the same row (docs/design/sync.md).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

logger = logging.getLogger("mentor_pipeline.operations")

# A beat this often; a run silent for SILENT_AFTER (several missed beats) is dead.
BEAT_EVERY = timedelta(seconds=5)
SILENT_AFTER = timedelta(seconds=45)


@dataclass(frozen=True)
class SilentRun:
    run_id: str
    last_beat: datetime
    worker: str

    def failure_message(self) -> str:
        return (f"the run's worker ({self.worker}) stopped sending heartbeats at {self.last_beat:%Y-%m-%d %H:%M:%S %Z} "
                f"and is presumed dead (killed with its daemon or code server, out of memory, or its host "
                f"restarted). The changes it had claimed go back to sync_queue when their leases end; the "
                f"next drain writes them.")


def beat(conn: psycopg.Connection, run_id: str, job_name: str, at: datetime | None = None) -> None:
    conn.execute("select beat_run_heartbeat(%s, %s, %s, coalesce(%s::timestamptz, now()))",
                 (run_id, job_name, f"{socket.gethostname()}:{os.getpid()}", at))


def end(conn: psycopg.Connection, run_id: str) -> None:
    conn.execute("select end_run_heartbeat(%s)", (run_id,))


def silent_runs(conn: psycopg.Connection, run_ids: list[str], at: datetime | None = None,
                silent_after: timedelta = SILENT_AFTER) -> list[SilentRun]:
    rows = conn.execute("select run_id, beat_at, worker from silent_runs(%s, %s, coalesce(%s::timestamptz, now()))",
                        (run_ids, silent_after, at)).fetchall()
    return [SilentRun(*row) for row in rows]


@contextlib.contextmanager
def beating(connect: Callable[[], psycopg.Connection], run_id: str, job_name: str,
            every: timedelta = BEAT_EVERY, log: logging.Logger = logger) -> Iterator[None]:
    """Beat for `run_id` from a thread of this process while the block runs; the heartbeat is
    removed when it ends (however it ends: a finished run is not a dead one)."""
    stop = threading.Event()

    def run() -> None:
        conn = None
        while True:
            try:
                if conn is None:
                    conn = connect()
                    conn.autocommit = True
                beat(conn, run_id, job_name)
            except psycopg.Error as exc:  # the next beat tries again; several missed ones mean dead
                log.warning("could not beat the run's heartbeat: %s", exc)
                if conn is not None:
                    conn.close()
                conn = None
            if stop.wait(every.total_seconds()):
                break
        try:
            conn = conn if conn is not None and not conn.closed else connect()
            conn.autocommit = True
            end(conn, run_id)
        except psycopg.Error as exc:
            log.warning("could not remove the run's heartbeat: %s", exc)
        finally:
            if conn is not None:
                conn.close()

    thread = threading.Thread(target=run, name="run-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


def beating_for(context, app_db) -> contextlib.AbstractContextManager[None]:
    """The heartbeat of the Dagster run executing `context`, for the step that holds the Dynamics
    budget (the drain, reconciliation, force sync; all run in process)."""
    return beating(app_db.connect, context.run.run_id, context.run.job_name, log=context.log)
