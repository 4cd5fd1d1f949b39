"""Shared fixtures: real PostgreSQL for every database test.

With DATABASE_URL set the tests use that server; otherwise they start an embedded PostgreSQL
(pgserver) in a temporary folder for the session. Each test gets its own database, copied from
a migrated template, and drops it afterwards.

The fixtures of the emulator, the webhook receiver and the alert sink live in tests/support/stack.py,
the end-to-end stack's in tests/e2e/plugin.py: plugins for every test (`pytest_plugins`).
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import psycopg
import pytest

from mentor_pipeline.db.connection import with_database
from tests.support.db import create_migrated_template, drop_database, fresh_database, test_server
from tests.support.pooler import running_pgbouncer

pytest_plugins = ["tests.support.stack", "tests.e2e.plugin"]

# The go-live date every Dagster process needs (mentor_pipeline/nights.py): early enough for the
# nights the tests run; the subprocesses they start (webserver, daemon, CLI) inherit it.
os.environ.setdefault("MENTOR_PIPELINE_FIRST_NIGHT", "2026-01-01")

DB_FIXTURES = {"db_url", "db", "admin_url", "migrated_template", "pooler_url", "pooled_db_url"}


def pytest_collection_modifyitems(items):
    for item in items:
        if DB_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.db)


@pytest.fixture(scope="session", autouse=True)
def embedded_fallback_server(tmp_path_factory):
    """Code under test that falls back to the embedded server (no DATABASE_URL, e.g. an alert
    sink without a database URL) starts it in a folder of this session, not in the repository's
    .pgdata, and it is stopped when the session ends: tests stop what they start."""
    folder = tmp_path_factory.mktemp("embedded") / "pgdata"
    patch = pytest.MonkeyPatch()
    patch.setenv("MENTOR_PIPELINE_PGDATA", str(folder))
    try:
        yield folder
    finally:
        from mentor_pipeline.db.connection import stop_embedded_server

        stop_embedded_server(folder)
        patch.undo()


@pytest.fixture(scope="session")
def admin_url(tmp_path_factory) -> str:
    with test_server(tmp_path_factory.mktemp("postgres")) as url:
        yield url


@pytest.fixture(scope="session")
def migrated_template(admin_url) -> str:
    name = create_migrated_template(admin_url)
    yield name
    drop_database(admin_url, name)


@pytest.fixture
def db_url(admin_url, migrated_template, monkeypatch) -> str:
    with fresh_database(admin_url, migrated_template) as url:
        # Code under test that calls mentor_pipeline.db.connect() lands in this database too.
        monkeypatch.setenv("DATABASE_URL", url)
        yield url


@pytest.fixture
def db(db_url):
    with psycopg.connect(db_url, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="session")
def pooler_url(admin_url) -> str:
    """The test server through PgBouncer in transaction mode (Supabase's pooler on port 6543)."""
    with running_pgbouncer(admin_url) as url:
        yield url


@pytest.fixture
def pooled_db_url(admin_url, migrated_template, pooler_url, monkeypatch) -> str:
    """A fresh migrated database, reached through the transaction pooler, as production reaches
    Supabase; the code under test connects through it too (DATABASE_URL)."""
    with fresh_database(admin_url, migrated_template) as direct_url:
        url = with_database(pooler_url, urlsplit(direct_url).path.lstrip("/"))
        monkeypatch.setenv("DATABASE_URL", url)
        yield url
