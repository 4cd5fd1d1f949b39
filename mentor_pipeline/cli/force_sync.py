"""`mentor-pipeline force-sync [--mentor ID|NAME ...] [--chapter NAME] [--dry-run]`: re-sync now,
without Dagster."""

from __future__ import annotations

from mentor_pipeline.cli import CommandError
from mentor_pipeline.cli.reconcile import exit_code, print_report
from mentor_pipeline.cli.sync import alert_sink, database_start, open_client, run_with_progress, sync_settings


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "force-sync", help="break-glass: write the current listing of every HLF mentor (or the selected ones) to Dynamics",
        description="Marks every HLF mentor, or the selected ones, for a write (force_sync) and writes what the rule "
                    "says now. A selection that names no HLF mentor stops the command before anything is queued.",
    )
    parser.add_argument("--mentor", action="append", metavar="ID|NAME", default=[],
                        help="a mentor id or exact full name (repeatable); default: every HLF mentor")
    parser.add_argument("--chapter", help="every mentor of this chapter")
    parser.add_argument("--dry-run", action="store_true", help="show the differences, change nothing")
    parser.set_defaults(func=_run)


def _run(args) -> int:
    from mentor_pipeline.db import connect
    from mentor_pipeline.reconcile.run import force_sync
    from mentor_pipeline.reconcile.store import InvalidMentorIds, select_mentors

    ids = [m for m in args.mentor if _is_uuid(m)]
    names = [m for m in args.mentor if not _is_uuid(m)]
    if args.mentor or args.chapter:
        with connect(autocommit=True) as conn:  # a bad selection fails before any sign-in or write
            try:
                select_mentors(conn, ids, names, args.chapter)
            except InvalidMentorIds as exc:
                raise CommandError(str(exc)) from None
    since = database_start()
    settings = sync_settings()
    client = open_client()
    try:
        report = run_with_progress(lambda bar: force_sync(
            settings.drain(connect, client, alerts=None if args.dry_run else alert_sink()), mentor_ids=ids,
            mentor_names=names, chapter=args.chapter, dry_run=args.dry_run, progress=bar))
    finally:
        client.close()
    print_report(report)
    return exit_code("force-sync", report, since, dry_run=args.dry_run)


def _is_uuid(text: str) -> bool:
    import uuid

    try:
        uuid.UUID(text.strip())
    except ValueError:
        return False
    return True
