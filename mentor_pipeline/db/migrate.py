"""Applies `supabase/migrations/<timestamp>_<name>.sql` in order, once each.

What was applied is recorded in `supabase_migrations.schema_migrations`, the table the
Supabase CLI itself uses, so `supabase db push` sees the same history and the same files.
A transaction-level advisory lock serialises concurrent runners (two deploys, parallel test
sessions), so it works through Supabase's transaction pooler too. A migration that changed after
it was applied stops the run with one line: migrations are never edited, a new one is written.

The pipeline's migrations expect the app's own tables to exist (docs/design/schema-contract.md).
`with_app_standin` first creates stand-ins for them (`supabase/app_standin/`, for the demo and
the tests), recorded apart in `supabase_migrations.app_standin_migrations`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

from mentor_pipeline.db.connection import DatabaseError, connect, first_line

# The repository's supabase/ folder, linked into the package (mentor_pipeline/supabase) so that a
# wheel carries it: found the same way in a checkout and in an installed pipeline.
SUPABASE_DIR = Path(__file__).resolve().parents[1] / "supabase"
MIGRATIONS_DIR = SUPABASE_DIR / "migrations"
APP_STANDIN_DIR = SUPABASE_DIR / "app_standin"
# The app's tables the stand-in creates: when they all exist, there is nothing to stand in for.
APP_TABLES = ("organizations", "chapters", "mentors", "certifications")
_FILENAME = re.compile(r"^(?P<version>\d{14})_(?P<name>[a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x6D656E746F72  # "mentor": any constant shared by all runners
_HISTORY = "supabase_migrations.schema_migrations"
_STANDIN_HISTORY = "supabase_migrations.app_standin_migrations"


def _history_ddl(history: str) -> str:
    # The app stand-in's history has the same shape; statements null: recorded without running.
    return f"""
create schema if not exists supabase_migrations;
create table if not exists {history} (
    version text primary key,
    statements text[],
    name text
);
"""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    path: Path
    standin: bool = False

    @property
    def sql(self) -> str:
        return self.path.read_text()

    @property
    def label(self) -> str:
        return f"app stand-in {self.path.name}" if self.standin else self.path.name


def discover(directory: Path = MIGRATIONS_DIR, *, standin: bool = False) -> list[Migration]:
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILENAME.match(path.name)
        if not match:
            raise DatabaseError(f"migration file name {path.name!r} is not <14-digit timestamp>_<name>.sql")
        migrations.append(Migration(match["version"], match["name"], path, standin))
    return migrations


def applied_versions(conn: psycopg.Connection, history: str = _HISTORY) -> set[str]:
    return set(_recorded(conn, history))


def migrate(
    url: str | None = None, directory: Path = MIGRATIONS_DIR, *, with_app_standin: bool = False
) -> list[Migration]:
    """Apply pending migrations (after the app stand-in when asked); returns the ones applied
    now (empty when up to date). Refuses to run when a migration already applied has changed."""
    applied_now = []
    with connect(url, autocommit=True) as conn:
        if with_app_standin:
            applied_now += _apply_pending(conn, discover(APP_STANDIN_DIR, standin=True), _STANDIN_HISTORY)
        applied_now += _apply_pending(conn, discover(directory), _HISTORY)
    return applied_now


def _apply_pending(conn: psycopg.Connection, migrations: list[Migration], history: str) -> list[Migration]:
    """One transaction per migration, each under a transaction-level advisory lock.

    A session lock would not survive Supabase's transaction pooler (the unlock may reach another
    server connection and the lock leaks on the first); a transaction's lock is released by its
    own commit or rollback wherever it ran. Each transaction reads the history again under the
    lock, so a second runner waits for the first one's migration, then finds it applied."""
    applied = []
    while True:
        with conn.transaction():
            conn.execute("select pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            conn.execute(_history_ddl(history))
            recorded = _recorded(conn, history)
            _refuse_changed(migrations, recorded)
            pending = [m for m in migrations if m.version not in recorded]
            if not pending:
                return applied
            if history == _STANDIN_HISTORY and not recorded and _app_tables_exist(conn):
                # The app's tables are there already (the first migration created them before the
                # stand-in moved out of it, or this is the app itself): record, run nothing.
                for migration in pending:
                    _record(conn, migration, history, statements=None)
                return applied
            _apply(conn, pending[0], history)
        applied.append(pending[0])


def _recorded(conn: psycopg.Connection, history: str) -> dict[str, list[str] | None]:
    return dict(conn.execute(f"select version, statements from {history}").fetchall())


def _refuse_changed(migrations: list[Migration], recorded: dict[str, list[str] | None]) -> None:
    """A database keeps what a migration did when it was applied: an edited file would never run
    again, and the database would silently keep the old function bodies."""
    for migration in migrations:
        statements = recorded.get(migration.version)
        if statements is not None and not _same_text(statements, migration.sql):
            raise DatabaseError(
                f"{migration.label} changed after it was applied: restore it and write a new migration"
            )


_INSIGNIFICANT = re.compile(r"--[^\n]*|\s+|;")


def _same_text(statements: list[str], text: str) -> bool:
    if len(statements) == 1:  # recorded by this runner: the file's whole text
        return statements[0] == text
    # Recorded by `supabase db push`, which stores the file split into statements.
    return _INSIGNIFICANT.sub("", "".join(statements)) == _INSIGNIFICANT.sub("", text)


def _app_tables_exist(conn: psycopg.Connection) -> bool:
    (present,) = conn.execute(
        "select count(*) from unnest(%s::text[]) t where to_regclass(format('public.%%I', t)) is not null",
        (list(APP_TABLES),),
    ).fetchone()
    return present == len(APP_TABLES)


def _apply(conn: psycopg.Connection, migration: Migration, history: str) -> None:
    try:
        with conn.transaction():  # a savepoint: a failing migration is rolled back, the error told
            conn.execute(migration.sql)
            _record(conn, migration, history, migration.sql)
    except psycopg.Error as exc:
        raise DatabaseError(f"migration {migration.label} failed: {first_line(exc)}") from exc


def _record(conn: psycopg.Connection, migration: Migration, history: str, statements: str | None) -> None:
    conn.execute(
        f"insert into {history} (version, name, statements)"
        " values (%s, %s, case when %s::text is null then null else array[%s::text] end)",
        (migration.version, migration.name, statements, statements),
    )
