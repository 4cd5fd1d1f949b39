"""`db migrate` through the transaction pooler: two deploys at once apply each migration once and
leave no lock behind on any pooled server connection."""

from __future__ import annotations

import os
import subprocess

import psycopg

from mentor_pipeline.db.connection import with_database
from mentor_pipeline.db.migrate import APP_STANDIN_DIR, discover
from tests.support.cli import cli_argv
from tests.support.db import apply_supabase_default_grants, create_database, drop_database


def test_two_migrate_commands_at_once_through_the_pooler_apply_everything_once(admin_url, pooler_url):
    name = create_database(admin_url)
    direct = with_database(admin_url, name)
    pooled = with_database(pooler_url, name)
    try:
        apply_supabase_default_grants(direct)
        env = {**os.environ, "DATABASE_URL": pooled}
        runners = [subprocess.Popen(cli_argv("db", "migrate", "--with-app-standin"), env=env, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
        results = [(runner.wait(timeout=180), *runner.communicate()) for runner in runners]
        assert [code for code, _, _ in results] == [0, 0], results

        with psycopg.connect(direct, autocommit=True) as conn:
            history = [v for (v,) in conn.execute(
                "select version from supabase_migrations.schema_migrations order by version")]
            assert history == [m.version for m in discover()]
            standin = [v for (v,) in conn.execute("select version from supabase_migrations.app_standin_migrations")]
            assert standin == [m.version for m in discover(APP_STANDIN_DIR)]
            # No advisory lock survives on any server connection the pooler keeps open.
            assert conn.execute("select count(*) from pg_locks where locktype = 'advisory'").fetchone() == (0,)
        third = subprocess.run(cli_argv("db", "migrate"), env=env, capture_output=True, text=True, timeout=180)
        assert (third.returncode, third.stdout.strip()) == (0, "database is up to date")
    finally:
        drop_database(admin_url, name)

