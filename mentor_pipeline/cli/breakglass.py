"""What the break-glass commands (`sync`, `reconcile`, `force-sync`) share, in one place: credentials
from the environment, or a hidden prompt for the client secret when DYNAMICS_CLIENT_SECRET is
unset and stdin is a terminal (never a command-line argument: other users can read those), a
sign-in check first, a progress bar on stderr, a summary table on stdout, and the exit code with
its one line (mentor_pipeline/cli/leftover.py has the codes). Each command imports only this.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable

from mentor_pipeline.cli import CommandError
from mentor_pipeline.cli.leftover import EXIT_ERROR, EXIT_REVIEW, Start


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


def run_with_progress(work: Callable[[ProgressBar], object]):
    bar = ProgressBar()
    try:
        return work(bar)
    finally:
        bar.done()


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


def database_start() -> Start:
    """What the command found when it started: rows that go dead after it are ours to report, rows
    that arrive after it are reported as such, not as left undone."""
    from mentor_pipeline.cli.leftover import command_start
    from mentor_pipeline.db import connect
    from mentor_pipeline.sync.store import tick

    with connect(autocommit=True) as conn:
        tick(conn)  # the status changes committed before the command are in the queue before its start
        return command_start(conn)


def finish(command: str, start: Start, *, error: bool = False, review: bool = False) -> int:
    """The exit code and its one-line summary of what the queue still holds of the work due at
    `start` or queued by the command itself (`start.own`); mentor_pipeline/cli/leftover.py has the codes."""
    from mentor_pipeline.cli.leftover import queue_left
    from mentor_pipeline.db import connect

    with connect(autocommit=True) as conn:
        left = queue_left(conn, start)
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


def run_reconciliation(command: str, work: Callable[..., object], *, dry_run: bool) -> int:
    """`reconcile` and `force-sync`: sign in, run `work(drain, progress)` with a progress bar,
    print the summary, and the exit code. A dry run raises no alerts."""
    from mentor_pipeline.db import connect

    start = database_start()
    settings = sync_settings()
    client = open_client()
    try:
        report = run_with_progress(
            lambda bar: work(settings.drain(connect, client, alerts=None if dry_run else alert_sink()), bar))
    finally:
        client.close()
    print_reconciliation(report)
    return finish_reconciliation(command, report, start, dry_run=dry_run)


def finish_reconciliation(command: str, report, start: Start, *, dry_run: bool) -> int:
    """`reconcile` and `force-sync`: what the queue still holds decides, their own queued rows
    counted with what was due at the start; a dry run changed nothing, so only its own findings count."""
    if dry_run:
        return 1 if report.failed else 0
    auth_error = report.drain is not None and bool(report.drain.auth_error)
    if report.changes is not None and "queue_id" in report.changes:
        start = start.with_own(report.changes["queue_id"].dropna())
    return finish(command, start, error=auth_error, review=bool(report.still_divergent or report.duplicates))


def print_reconciliation(report, limit: int = 20) -> None:
    """`reconcile` and `force-sync`: the summary table, the first differences, the dead rows."""
    print_table(report.text_lines())
    changes = report.changes
    if changes is not None and not changes.empty:
        print()
        print("differences:" if report.kind == "reconciliation" or report.dry_run else "written:")
        for row in changes.head(limit).itertuples(index=False):
            result = getattr(row, "result", "") or ""
            dynamics = row.dynamics_state or "not read"
            status = row.status or "(gone)"  # a listed contact whose mentor is not in the app
            print(f"  {row.mentor_id}  {status:<12} should be listed: {'yes' if row.should_be_listed else 'no ':<3}"
                  f"  Dynamics: {dynamics:<8}  {row.classification:<22} {row.action:<13} {result}")
        if len(changes) > limit:
            print(f"  ... and {len(changes) - limit} more (select * from reconciliation_log)")
    if report.drain is not None:
        print_dead_rows(report.drain)
    if report.drain is not None and report.drain.auth_error:
        print(f"error: {report.drain.auth_error}")


def merge_reports(total, report) -> None:
    """Add one drain's report to the running total of a command that drains several times."""
    total.rows += report.rows
    total.batches += report.batches
    total.rate_limit_waits += report.rate_limit_waits
    total.archived += report.archived
    total.seconds += report.seconds
    total.auth_error = report.auth_error or total.auth_error
    total.auth_incident = report.auth_incident or total.auth_incident
    total.stopped_reason = report.stopped_reason or total.stopped_reason


def drain_until_done(client, settings, *, wait: bool, rounds: int = 3):
    """Drain what is due; drain again for what of it is still due (a claim missed it, or it
    became due at the very end); with `wait`, also wait for other processes' leased rows and drain
    them once they are free. The start is taken after the clock tick has marked what lapsed, and
    only the rows waiting then decide whether to go on: changes the live app makes meanwhile are
    written as they come into the batches, never chased. Returns the report of all drains together
    and the start."""
    from mentor_pipeline.cli import leftover
    from mentor_pipeline.db import connect
    from mentor_pipeline.progress import CountingClient
    from mentor_pipeline.sync.report import DrainReport
    from mentor_pipeline.sync.store import tick

    total = DrainReport()
    with connect(autocommit=True) as conn:
        due = tick(conn)
        start = leftover.command_start(conn)
        expected = due.due_count + due.expired_leases
        policy = settings.policy()
        while True:
            # Batches enough for what is due now, and one more: a drain that took every change the
            # live app makes meanwhile might never end. What is left of the start's work decides below.
            bound = -(-expected // policy.batch_size) + 1
            report = run_with_progress(lambda bar: settings.drain(
                connect, CountingClient(client, bar, expected), alerts=alert_sink()).run(max_batches=bound))
            refused = report.auth_error or (report.stopped_reason and report.batches < bound)
            if not refused:
                report.stopped_reason = None  # our own bound, not news
            merge_reports(total, report)
            left = leftover.queue_left(conn, start)
            if refused:
                return total, start  # Dynamics refused: more drains now would meet the same wall
            if wait and left.leased:
                leftover.wait_for_foreign_leases(conn, left, start, say=lambda line: print(line, file=sys.stderr))
            elif (left.due_untried or left.expired_leases) and not left.leased and rounds > 1:
                rounds -= 1  # became due after the last claim
            else:
                return total, start
            expected = left.due_untried + left.expired_leases + left.leased
