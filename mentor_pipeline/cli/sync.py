"""`mentor-pipeline sync`: drain sync_queue into Dynamics now, without Dagster (break-glass).

Also the shared plumbing of the break-glass commands (`reconcile`, `force-sync`): credentials
from the environment, or a hidden prompt for the client secret when DYNAMICS_CLIENT_SECRET is
unset and stdin is a terminal (never a command-line argument: other users can read those), a
sign-in check first, a progress bar on stderr, and a summary table on stdout.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable

from mentor_pipeline.cli import CommandError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "sync", help="break-glass: write every due sync_queue change to Dynamics now (no Dagster needed)",
        description="Drains sync_queue into Dynamics with the same processor as website_sync_job. Credentials: "
                    "DYNAMICS_* variables; the client secret is prompted for when unset and stdin is a terminal. "
                    "Exit codes: 0 nothing due left undone; 1 could not run (sign-in, auth); 3 rows leased by "
                    "another process; 4 rows still pending after failed attempts; 5 rows went dead.",
    )
    parser.add_argument("--wait", action="store_true",
                        help="when another process holds rows (a running drain, or a crashed one whose leases have "
                             "not run out), wait for it and finish the work instead of exiting with code 3")
    parser.set_defaults(func=_run)


# -- shared by the break-glass commands ---------------------------------------------------------

def dynamics_settings():
    """DYNAMICS_* from the environment; the secret from a hidden prompt when unset on a terminal."""
    from mentor_pipeline.dynamics.settings import DynamicsSettings

    env = dict(os.environ)
    if not env.get("DYNAMICS_CLIENT_SECRET") and sys.stdin is not None and sys.stdin.isatty():
        env["DYNAMICS_CLIENT_SECRET"] = getpass.getpass("Dynamics client secret (input hidden): ").strip()
    try:
        return DynamicsSettings.from_env(env)
    except Exception as exc:
        raise CommandError(str(exc)) from None


def open_client():
    """A signed-in client (WhoAmI first): a wrong or expired secret stops here with HLF IT's next step."""
    from mentor_pipeline.dynamics import DataverseClient
    from mentor_pipeline.dynamics.errors import DynamicsError

    client = DataverseClient(dynamics_settings())
    try:
        client.whoami()
    except DynamicsError as exc:
        client.close()
        raise CommandError(f"Dynamics sign-in failed, nothing was changed: {exc}") from None
    return client


def alert_sink():
    from mentor_pipeline.operations.alerts import alert_sink_from_env

    return alert_sink_from_env()


def sync_settings():
    """The queue policy and alerting bounds the Dagster resource has, from the same environment."""
    from mentor_pipeline.resources import sync_settings_from_env

    return sync_settings_from_env()


class ProgressBar:
    """One line on stderr, redrawn in place: `[#####.....] writing 500/1,000`."""

    def __init__(self, stream=None, width: int = 30):
        self.stream = stream or sys.stderr
        self.width = width
        self._drawn = False

    def __call__(self, phase: str, done: int, total: int | None) -> None:
        label = {"read": "reading Dynamics listings", "write": "writing to Dynamics"}.get(phase, phase)
        if total:
            filled = min(self.width, int(self.width * done / max(total, 1)))
            line = f"[{'#' * filled}{'.' * (self.width - filled)}] {label} {done:,}/{total:,}"
        else:
            line = f"{label}: {done:,}"
        self.stream.write("\r" + line.ljust(72))
        self.stream.flush()
        self._drawn = True

    def done(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False


def print_table(lines: list[str]) -> None:
    for line in lines:
        print(line)


def print_dead_rows(drain, limit: int = 20) -> None:
    """Why each dead row gave up: the one thing the operator must act on."""
    dead = drain.dead_rows()
    for row in dead[:limit]:
        print(f"  dead: queue row {row.queue_id}, mentor {row.mentor_id}: {row.reason}")
    if len(dead) > limit:
        print(f"  ... and {len(dead) - limit} more dead rows (select * from sync_queue where status = 'dead')")


def database_start():
    """The database's clock when the command starts: rows that go dead after it are ours to report."""
    from mentor_pipeline.db import connect
    from mentor_pipeline.sync.leftover import database_now

    with connect(autocommit=True) as conn:
        return database_now(conn)


def finish(command: str, since, *, error: bool = False, review: bool = False) -> int:
    """The exit code and its one-line summary of what the queue still holds
    (mentor_pipeline/sync/leftover.py has the codes)."""
    from mentor_pipeline.db import connect
    from mentor_pipeline.sync.leftover import EXIT_ERROR, EXIT_REVIEW, queue_left

    with connect(autocommit=True) as conn:
        left = queue_left(conn, since)
    if error:
        code = EXIT_ERROR
    elif left.exit_code:
        code = left.exit_code
    else:
        code = EXIT_REVIEW if review else 0
    summary = left.summary()
    if code == EXIT_REVIEW:
        summary = "mentors still divergent or duplicate records to review (see above); " + summary
    print(f"mentor-pipeline {command}: {summary}")
    return code


def run_with_progress(work: Callable[[ProgressBar], object]):
    bar = ProgressBar()
    try:
        return work(bar)
    finally:
        bar.done()


# -- mentor-pipeline sync ----------------------------------------------------------------------

def _run(args) -> int:
    from mentor_pipeline.db import connect
    from mentor_pipeline.sync.store import tick

    since = database_start()
    with connect(autocommit=True) as conn:
        due = tick(conn)
    settings = sync_settings()
    client = open_client()
    try:
        report = _drain_until_done(connect, client, due.due_count + due.expired_leases, since, settings, wait=args.wait)
    finally:
        client.close()
    rows = [("applied", report.applied), ("superseded (no longer right)", report.superseded),
            ("to retry later", report.retried), ("dead (need a person)", report.dead),
            ("released (auth failure)", report.released), ("batches", report.batches)]
    width = max(len(label) for label, _ in rows)
    print_table(["website sync (break-glass)", "-" * (width + 10)] + [f"{label:<{width}}  {n:>8}" for label, n in rows]
                + [f"{'seconds':<{width}}  {report.seconds:>8.1f}"])
    print_dead_rows(report)
    if report.auth_error:
        print(f"mentor-pipeline sync: error: {report.auth_error}", file=sys.stderr)
    return finish("sync", since, error=bool(report.auth_error))


def _drain_until_done(connect, client, due: int, since, settings, *, wait: bool, rounds: int = 3):
    """Drain; drain again for changes that became due at the very end; with `wait`, also wait
    for other processes' leased rows and drain them once they are free. Returns the report of
    all drains together."""
    from mentor_pipeline.sync.leftover import queue_left, wait_for_foreign_leases
    from mentor_pipeline.sync.progress import CountingClient
    from mentor_pipeline.sync.report import DrainReport

    total = DrainReport()
    with connect() as conn:
        conn.autocommit = True
        while True:
            report = run_with_progress(lambda bar: settings.drain(
                connect, CountingClient(client, bar, due), alerts=alert_sink()).run())
            total.rows += report.rows
            total.batches += report.batches
            total.seconds += report.seconds
            total.auth_error = report.auth_error or total.auth_error
            left = queue_left(conn, since)
            if report.auth_error or report.stopped_reason:
                return total  # Dynamics refused: more drains now would meet the same wall
            if wait and left.leased:
                wait_for_foreign_leases(conn, left, say=lambda line: print(line, file=sys.stderr))
            elif (left.due_untried or left.expired_leases) and not left.leased and rounds > 1:
                rounds -= 1  # arrived after the last claim
            else:
                return total
            due = left.due_untried + left.expired_leases + left.leased

