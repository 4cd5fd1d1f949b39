"""Throwaway databases for tests: one migrated template per session, a fresh copy per test."""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg

from mentor_pipeline.db.connection import _start_embedded_server, stop_embedded_server, with_database
from mentor_pipeline.db.migrate import APP_STANDIN_DIR, SUPABASE_DIR, migrate


@contextlib.contextmanager
def test_server(scratch_dir: Path) -> Iterator[str]:
    """Admin URL of the server under test: DATABASE_URL when set, else a fresh embedded server."""
    configured = os.environ.get("DATABASE_URL", "").strip()
    if configured:
        yield configured
        return
    data_dir = scratch_dir / "pgdata"
    url = _start_embedded_server(data_dir)
    try:
        yield url
    finally:
        stop_embedded_server(data_dir)


def create_database(admin_url: str, template: str | None = None) -> str:
    name = f"mp_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if template:
            conn.execute(f'create database "{name}" template "{template}"')
        else:
            conn.execute(f'create database "{name}"')
    return name


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


SUPABASE_DEFAULT_GRANTS = Path(__file__).with_name("supabase_default_grants.sql")


def apply_supabase_default_grants(url: str) -> None:
    """Supabase's default privileges for anon, authenticated and service_role in schema public."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SUPABASE_DEFAULT_GRANTS.read_text())


SCHEMAS_DIR = SUPABASE_DIR / "schemas"


def schema_files() -> list[Path]:
    """The current schema (supabase/schemas/) in apply order: the file-name prefixes put each
    area after the ones it calls."""
    return sorted(SCHEMAS_DIR.glob("*.sql"))


def build_from_schema_files(url: str) -> None:
    """What the migrations build, made from the schema files instead: the app stand-in, then
    every schema file, in one transaction, on Supabase's default grants."""
    apply_supabase_default_grants(url)
    with psycopg.connect(url) as conn:  # one transaction: a file that fails leaves nothing behind
        for path in [*sorted(APP_STANDIN_DIR.glob("*.sql")), *schema_files()]:
            try:
                conn.execute(path.read_text())
            except psycopg.Error as exc:
                raise AssertionError(f"supabase/{path.parent.name}/{path.name} failed: {exc}") from exc


def create_migrated_template(admin_url: str) -> str:
    """Migrated the way a Supabase project is: on top of Supabase's default grants."""
    name = create_database(admin_url)
    url = with_database(admin_url, name)
    apply_supabase_default_grants(url)
    migrate(url, with_app_standin=True)
    return name


@contextlib.contextmanager
def fresh_database(admin_url: str, template: str) -> Iterator[str]:
    """URL of a new database copied from the migrated template, dropped afterwards."""
    name = create_database(admin_url, template)
    try:
        yield with_database(admin_url, name)
    finally:
        drop_database(admin_url, name)


def wait_for_lock_waiters(conn: psycopg.Connection, count: int, timeout: float = 30.0) -> list[int]:
    """Backend pids of sessions (other than ours) waiting on a lock in this database."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = [pid for (pid,) in conn.execute(
            "select pid from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()"
            " and wait_event_type = 'Lock' order by pid").fetchall()]
        if len(pids) >= count:
            return pids
        time.sleep(0.05)
    raise AssertionError(f"expected {count} sessions waiting on a lock within {timeout}s")
