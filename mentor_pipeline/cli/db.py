"""`mentor-pipeline db url|migrate|seed`."""

from __future__ import annotations

from mentor_pipeline.db import database_url
from mentor_pipeline.db.migrate import migrate
from mentor_pipeline.db.seed import seed


def register(subparsers) -> None:
    parser = subparsers.add_parser("db", help="database: show the URL, apply migrations, load demo data")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("url", help="print the database URL in use (starts the embedded server if needed)").set_defaults(func=_url)
    actions.add_parser("migrate", help="apply pending migrations from supabase/migrations").set_defaults(func=_migrate)
    actions.add_parser("seed", help="load the demo organisations, chapters, mentors and certifications").set_defaults(func=_seed)


def _url(args) -> int:
    print(database_url())
    return 0


def _migrate(args) -> int:
    applied = migrate()
    if not applied:
        print("database is up to date")
    for migration in applied:
        print(f"applied {migration.path.name}")
    return 0


def _seed(args) -> int:
    created = seed()
    print(f"demo data loaded ({created} new mentors)")
    return 0
