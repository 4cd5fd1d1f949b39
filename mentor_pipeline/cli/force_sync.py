"""`mentor-pipeline force-sync [--mentor ID ...] [--dry-run]`: re-sync now, without Dagster."""

from __future__ import annotations

from mentor_pipeline.cli import CommandError
from mentor_pipeline.cli.reconcile import exit_code, print_report
from mentor_pipeline.cli.sync import alert_sink, database_start, open_client, run_with_progress


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "force-sync", help="break-glass: write the current listing of every HLF mentor (or --mentor ones) to Dynamics",
        description="Queues the current desired listing (force_sync) for every HLF mentor, or only the given ones, "
                    "and writes it. Unknown or non-HLF ids stop the command before anything is queued.",
    )
    parser.add_argument("--mentor", action="append", metavar="ID", default=[],
                        help="a mentor id (repeatable); default: every HLF mentor")
    parser.add_argument("--dry-run", action="store_true", help="show the differences, change nothing")
    parser.set_defaults(func=_run)


def _run(args) -> int:
    from mentor_pipeline.db import connect
    from mentor_pipeline.reconcile.run import force_sync
    from mentor_pipeline.reconcile.store import InvalidMentorIds, check_mentor_ids

    if args.mentor:
        with connect(autocommit=True) as conn:  # bad ids fail before any sign-in or write
            try:
                check_mentor_ids(conn, args.mentor)
            except InvalidMentorIds as exc:
                raise CommandError(str(exc)) from None
    since = database_start()
    client = open_client()
    try:
        report = run_with_progress(lambda bar: force_sync(
            connect, client, mentor_ids=args.mentor or None, dry_run=args.dry_run,
            alerts=None if args.dry_run else alert_sink(), progress=bar))
    finally:
        client.close()
    print_report(report)
    return exit_code("force-sync", report, since, dry_run=args.dry_run)
