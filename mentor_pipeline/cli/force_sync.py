"""`mentor-pipeline force-sync [--mentor ID|NAME ...] [--chapter NAME] [--dry-run]`: re-sync now,
without Dagster."""

from __future__ import annotations

from collections.abc import Sequence

from mentor_pipeline.cli import CommandError, breakglass


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
    parser.set_defaults(func=lambda args: run(mentors=args.mentor, chapter=args.chapter, dry_run=args.dry_run))


def run(*, mentors: Sequence[str], chapter: str | None, dry_run: bool) -> int:
    from mentor_pipeline.db import connect
    from mentor_pipeline.reconcile.run import force_sync
    from mentor_pipeline.reconcile.store import InvalidMentorIds, select_mentors

    ids = [m for m in mentors if _is_uuid(m)]
    names = [m for m in mentors if not _is_uuid(m)]
    if mentors or chapter:
        with connect(autocommit=True) as conn:  # a bad selection fails before any sign-in or write
            try:
                select_mentors(conn, ids, names, chapter)
            except InvalidMentorIds as exc:
                raise CommandError(str(exc)) from None
    return breakglass.run_reconciliation(
        "force-sync", lambda drain, bar: force_sync(drain, mentor_ids=ids, mentor_names=names, chapter=chapter,
                                                    dry_run=dry_run, progress=bar), dry_run=dry_run)


def _is_uuid(text: str) -> bool:
    import uuid

    try:
        uuid.UUID(text.strip())
    except ValueError:
        return False
    return True
