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
                    "DYNAMICS_* variables; the client secret is prompted for when unset and stdin is a terminal.",
    )
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
    from mentor_pipeline.alerts import alert_sink_from_env

    return alert_sink_from_env()


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
    dead = [r for r in drain.rows if r.result == "dead"]
    for row in dead[:limit]:
        print(f"  dead: queue row {row.queue_id}, mentor {row.mentor_id}: {row.reason}")
    if len(dead) > limit:
        print(f"  ... and {len(dead) - limit} more dead rows (select * from sync_queue where status = 'dead')")


def run_with_progress(work: Callable[[ProgressBar], object]):
    bar = ProgressBar()
    try:
        return work(bar)
    finally:
        bar.done()


# -- mentor-pipeline sync ----------------------------------------------------------------------

def _run(args) -> int:
    from mentor_pipeline.db import connect
    from mentor_pipeline.sync.processor import drain_queue
    from mentor_pipeline.sync.progress import CountingClient
    from mentor_pipeline.sync.queue import due_summary

    with connect(autocommit=True) as conn:
        due = due_summary(conn)
    client = open_client()
    try:
        def work(bar: ProgressBar):
            counting = CountingClient(client, bar, due.due_count + due.expired_leases)
            return drain_queue(connect, counting, alerts=alert_sink())

        report = run_with_progress(work)
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
    return 1 if (report.auth_error or report.dead or report.retried or report.released) else 0

