"""The migration runner: ordered, recorded where the Supabase CLI records them, idempotent."""

from __future__ import annotations

import pytest

from mentor_pipeline.db.connection import DatabaseError
from mentor_pipeline.db.migrate import discover, migrate
from tests.support.db import create_database, drop_database
from mentor_pipeline.db.connection import with_database


def test_applying_twice_is_a_no_op(db_url, db):
    assert migrate(db_url) == []  # the template is already migrated
    versions = [v for (v,) in db.execute("select version from supabase_migrations.schema_migrations order by version")]
    assert versions == [m.version for m in discover()]


def test_fresh_database_gets_every_migration_once(admin_url):
    name = create_database(admin_url)
    try:
        url = with_database(admin_url, name)
        first = migrate(url)
        second = migrate(url)
    finally:
        drop_database(admin_url, name)
    assert [m.version for m in first] == [m.version for m in discover()]
    assert second == []


def test_failing_migration_is_rolled_back_and_not_recorded(admin_url, tmp_path):
    (tmp_path / "20990101000000_good.sql").write_text("create table good_one (id int);")
    (tmp_path / "20990101000001_bad.sql").write_text("create table half_done (id int); select 1/0;")
    name = create_database(admin_url)
    try:
        url = with_database(admin_url, name)
        with pytest.raises(DatabaseError, match="20990101000001_bad.sql failed: division by zero"):
            migrate(url, tmp_path)
        import psycopg

        with psycopg.connect(url) as conn:
            recorded = [v for (v,) in conn.execute("select version from supabase_migrations.schema_migrations")]
            half_done = conn.execute("select to_regclass('half_done')").fetchone()[0]
    finally:
        drop_database(admin_url, name)
    assert recorded == ["20990101000000"]
    assert half_done is None


def test_badly_named_migration_file_is_refused(tmp_path):
    (tmp_path / "add_stuff.sql").write_text("select 1;")
    with pytest.raises(DatabaseError, match="add_stuff.sql"):
        discover(tmp_path)
