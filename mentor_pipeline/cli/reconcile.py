"""`mentor-pipeline reconcile [--dry-run]`: the nightly reconciliation now, without Dagster."""

from __future__ import annotations

from mentor_pipeline.cli import breakglass


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
    parser.set_defaults(func=lambda args: run(dry_run=args.dry_run))


def run(*, dry_run: bool) -> int:
    from mentor_pipeline.reconcile.run import reconcile

    return breakglass.run_reconciliation(
        "reconcile", lambda drain, bar: reconcile(drain, dry_run=dry_run, progress=bar), dry_run=dry_run)
