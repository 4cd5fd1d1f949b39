"""Applies `supabase/migrations/<timestamp>_<name>.sql` in order, once each.

What was applied is recorded in `supabase_migrations.schema_migrations`, the table the
Supabase CLI itself uses, so `supabase db push` sees the same history and the same files.
An advisory lock serialises concurrent runners (two deploys, parallel test sessions).

The pipeline's migrations expect the app's own tables to exist (docs/design/schema-contract.md).
`with_app_standin` first creates stand-ins for them (`supabase/app_standin/`, for the demo and
the tests), recorded apart in `supabase_migrations.app_standin_migrations`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

from mentor_pipeline.db.connection import DatabaseError, connect, first_line, project_root

MIGRATIONS_DIR = project_root() / "supabase" / "migrations"
APP_STANDIN_DIR = project_root() / "supabase" / "app_standin"
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
    rows = conn.execute(f"select version from {history}").fetchall()
    return {version for (version,) in rows}


def migrate(
    url: str | None = None, directory: Path = MIGRATIONS_DIR, *, with_app_standin: bool = False
) -> list[Migration]:
    """Apply pending migrations (after the app stand-in when asked); returns the ones applied
    now (empty when up to date)."""
    applied_now = []
    with connect(url, autocommit=True) as conn:
        conn.execute("select pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            conn.execute(_history_ddl(_HISTORY))
            if with_app_standin:
                applied_now += _apply_app_standin(conn)
            done = applied_versions(conn)
            for migration in discover(directory):
                if migration.version in done:
                    continue
                _apply(conn, migration, _HISTORY)
                applied_now.append(migration)
        finally:
            conn.execute("select pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied_now


def _apply_app_standin(conn: psycopg.Connection) -> list[Migration]:
    conn.execute(_history_ddl(_STANDIN_HISTORY))
    done = applied_versions(conn, _STANDIN_HISTORY)
    pending = [m for m in discover(APP_STANDIN_DIR, standin=True) if m.version not in done]
    if pending and not done and _app_tables_exist(conn):
        # The app's tables are there already (the first migration created them before the
        # stand-in moved out of it, or this is the app itself): record, run nothing.
        for migration in pending:
            _record(conn, migration, _STANDIN_HISTORY, statements=None)
        return []
    for migration in pending:
        _apply(conn, migration, _STANDIN_HISTORY)
    return pending


def _app_tables_exist(conn: psycopg.Connection) -> bool:
    (present,) = conn.execute(
        "select count(*) from unnest(%s::text[]) t where to_regclass(format('public.%%I', t)) is not null",
        (list(APP_TABLES),),
    ).fetchone()
    return present == len(APP_TABLES)


def _apply(conn: psycopg.Connection, migration: Migration, history: str) -> None:
    try:
        with conn.transaction():
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
