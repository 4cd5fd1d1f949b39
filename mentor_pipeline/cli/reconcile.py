"""`mentor-pipeline reconcile [--dry-run]`: the nightly reconciliation now, without Dagster."""

from __future__ import annotations

from mentor_pipeline.cli.sync import (
    alert_sink,
    database_start,
    finish,
    open_client,
    print_dead_rows,
    print_table,
    run_with_progress,
    sync_settings,
)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "reconcile", help="break-glass: compare every HLF listing in Dynamics with the app and re-sync the differences",
        description="Reads every listing from Dynamics, compares it with the app (mentor_website_desired_state), "
                    "queues the divergent mentors (reconciliation) and writes them. Exit codes as for sync (0 done; 1 could "
                    "not run; 3 rows leased by another process; 4 rows still pending after failed attempts; 5 dead "
                    "rows), and 6 when mentors stay divergent or duplicates need review. --dry-run: 1 when "
                    "anything needs a person.",
    )
    parser.add_argument("--dry-run", action="store_true", help="show the differences, change nothing")
    parser.set_defaults(func=_run)


def _run(args) -> int:
    from mentor_pipeline.db import connect
    from mentor_pipeline.reconcile.run import reconcile

    since = database_start()
    settings = sync_settings()
    client = open_client()
    try:
        report = run_with_progress(lambda bar: reconcile(
            settings.drain(connect, client, alerts=None if args.dry_run else alert_sink()), dry_run=args.dry_run,
            progress=bar))
    finally:
        client.close()
    print_report(report)
    return exit_code("reconcile", report, since, dry_run=args.dry_run)


def exit_code(command: str, report, since, *, dry_run: bool) -> int:
    """What the queue still holds decides (mentor_pipeline/sync/leftover.py); a dry run changed
    nothing, so only its own findings count."""
    if dry_run:
        return 1 if report.failed else 0
    auth_error = report.drain is not None and bool(report.drain.auth_error)
    return finish(command, since, error=auth_error, review=bool(report.still_divergent or report.duplicates))


def print_report(report, limit: int = 20) -> None:
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
