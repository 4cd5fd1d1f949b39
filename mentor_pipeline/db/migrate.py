"""Applies `supabase/migrations/<timestamp>_<name>.sql` in order, once each.

What was applied is recorded in `supabase_migrations.schema_migrations`, the table the
Supabase CLI itself uses, so `supabase db push` sees the same history and the same files.
An advisory lock serialises concurrent runners (two deploys, parallel test sessions).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

from mentor_pipeline.db.connection import DatabaseError, connect, first_line, project_root

MIGRATIONS_DIR = project_root() / "supabase" / "migrations"
_FILENAME = re.compile(r"^(?P<version>\d{14})_(?P<name>[a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x6D656E746F72  # "mentor": any constant shared by all runners

_HISTORY_DDL = """
create schema if not exists supabase_migrations;
create table if not exists supabase_migrations.schema_migrations (
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

    @property
    def sql(self) -> str:
        return self.path.read_text()


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILENAME.match(path.name)
        if not match:
            raise DatabaseError(f"migration file name {path.name!r} is not <14-digit timestamp>_<name>.sql")
        migrations.append(Migration(match["version"], match["name"], path))
    return migrations


def applied_versions(conn: psycopg.Connection) -> set[str]:
    rows = conn.execute("select version from supabase_migrations.schema_migrations").fetchall()
    return {version for (version,) in rows}


def migrate(url: str | None = None, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Apply pending migrations; returns the ones applied now (empty when up to date)."""
    applied_now = []
    with connect(url, autocommit=True) as conn:
        conn.execute("select pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            conn.execute(_HISTORY_DDL)
            done = applied_versions(conn)
            for migration in discover(directory):
                if migration.version in done:
                    continue
                _apply(conn, migration)
                applied_now.append(migration)
        finally:
            conn.execute("select pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied_now


def _apply(conn: psycopg.Connection, migration: Migration) -> None:
    try:
        with conn.transaction():
            conn.execute(migration.sql)
            conn.execute(
                "insert into supabase_migrations.schema_migrations (version, name, statements)"
                " values (%s, %s, array[%s])",
                (migration.version, migration.name, migration.sql),
            )
    except psycopg.Error as exc:
        raise DatabaseError(f"migration {migration.path.name} failed: {first_line(exc)}") from exc
