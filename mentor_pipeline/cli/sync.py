"""`mentor-pipeline sync`: drain sync_queue into Dynamics now, without Dagster (break-glass)."""

from __future__ import annotations

import sys

from mentor_pipeline.cli import breakglass


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "sync", help="break-glass: write every due sync_queue change to Dynamics now (no Dagster needed)",
        description="Drains sync_queue into Dynamics with the same processor as website_sync_job. Credentials: "
                    "DYNAMICS_* variables; the client secret is prompted for when unset and stdin is a terminal. "
                    "Its job is what was due when it started; changes that arrive while it runs are reported. "
                    "Exit codes: 0 nothing due is left undone; 1 could not run (sign-in, auth); 3 rows leased by "
                    "another process; 4 rows still pending after failed attempts; 5 rows went dead.",
    )
    parser.add_argument("--wait", action="store_true",
                        help="when another process holds rows (a running drain, or a crashed one whose leases have "
                             "not run out), wait for it and finish the work instead of exiting with code 3")
    parser.set_defaults(func=lambda args: run(wait=args.wait))


def run(*, wait: bool) -> int:
    settings = breakglass.sync_settings()
    client = breakglass.open_client()
    try:
        report, start = breakglass.drain_until_done(client, settings, wait=wait)
    finally:
        client.close()
    rows = [("applied", report.applied), ("superseded (no longer right)", report.superseded),
            ("to retry later", report.retried), ("dead (need a person)", report.dead),
            ("released (auth failure)", report.released), ("batches", report.batches),
            ("429 waits (Retry-After)", report.rate_limit_waits), ("archived (old done rows)", report.archived)]
    width = max(len(label) for label, _ in rows)
    breakglass.print_table(["website sync (break-glass)", "-" * (width + 10)]
                           + [f"{label:<{width}}  {n:>8}" for label, n in rows]
                           + [f"{'seconds':<{width}}  {report.seconds:>8.1f}"])
    breakglass.print_dead_rows(report)
    if report.auth_error:
        print(f"mentor-pipeline sync: error: {report.auth_error}", file=sys.stderr)
    return breakglass.finish("sync", start, error=bool(report.auth_error))
