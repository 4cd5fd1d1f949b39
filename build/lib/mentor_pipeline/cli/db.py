"""`mentor-pipeline db url|migrate|seed`."""

from __future__ import annotations

from mentor_pipeline.db import database_url
from mentor_pipeline.db.migrate import migrate
from mentor_pipeline.db.seed import seed
from mentor_pipeline.redaction import redact_url


def register(subparsers) -> None:
    parser = subparsers.add_parser("db", help="database: show the URL, apply migrations, load demo data")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    url = actions.add_parser("url", help="print the database URL in use, credentials hidden (starts the embedded server if needed)")
    url.add_argument("--show-password", action="store_true", help="print it whole, e.g. for psql (mind who sees your terminal)")
    url.set_defaults(func=_url)
    migrate_parser = actions.add_parser("migrate", help="apply pending migrations from supabase/migrations")
    migrate_parser.add_argument(
        "--with-app-standin", action="store_true",
        help="first create stand-ins for the app's own tables (demo and test databases only; "
             "in production the app's tables exist already)")
    migrate_parser.set_defaults(func=_migrate)
    actions.add_parser("seed", help="load the demo organisations, chapters, mentors and certifications").set_defaults(func=_seed)


def _url(args) -> int:
    url = database_url()
    print(url if args.show_password else redact_url(url))
    return 0


def _migrate(args) -> int:
    applied = migrate(with_app_standin=args.with_app_standin)
    if not applied:
        print("database is up to date")
    for migration in applied:
        print(f"applied {migration.label}")
    return 0


def _seed(args) -> int:
    created = seed()
    print(f"demo data loaded ({created} new mentors)")
    return 0
