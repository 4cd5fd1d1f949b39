"""The migration runner: ordered, recorded where the Supabase CLI records them, idempotent; and
the schema contract: the pipeline's migrations apply on top of the app's own tables."""

from __future__ import annotations

import contextlib

import psycopg
import pytest

from mentor_pipeline.db.connection import DatabaseError, with_database
from mentor_pipeline.db.migrate import APP_STANDIN_DIR, discover, migrate
from tests.support.db import create_database, drop_database

# The app as it might really be: more columns than the pipeline reads, other statuses, its own
# trigger, RLS with its own policies and grants for Supabase's roles. The pipeline must apply on
# top of this and leave all of it as it was.
APP_SCHEMA = """
do $$ begin
    if not exists (select from pg_roles where rolname = 'anon') then create role anon nologin; end if;
    if not exists (select from pg_roles where rolname = 'authenticated') then create role authenticated nologin; end if;
exception when duplicate_object or unique_violation then null;
end $$;

create table organizations (
    id uuid primary key default gen_random_uuid(),
    code text not null unique,
    name text not null,
    slug text,
    logo_url text,
    website_sync_enabled boolean not null default false
);
create table chapters (
    id uuid primary key default gen_random_uuid(),
    organization_id uuid not null references organizations (id),
    region text,
    name text not null
);
create table mentors (
    id uuid primary key default gen_random_uuid(),
    user_id uuid,
    organization_id uuid not null references organizations (id),
    chapter_id uuid references chapters (id),
    status text not null default 'onboarding'
        check (status in ('onboarding', 'active', 'paused', 'expired_cert', 'retired')),
    full_name text not null,
    email text,
    phone text,
    updated_at timestamptz not null default now()
);
create table certifications (
    id uuid primary key default gen_random_uuid(),
    mentor_id uuid not null references mentors (id) on delete cascade,
    kind text not null default 'peer_mentor',
    document_url text,
    issued_at timestamptz not null,
    expires_at timestamptz not null
);

create function app_touch_updated_at() returns trigger language plpgsql as $f$
begin new.updated_at := now(); return new; end $f$;
create trigger mentors_touch before update on mentors for each row execute function app_touch_updated_at();

alter table organizations enable row level security;
alter table chapters enable row level security;
alter table mentors enable row level security;
alter table certifications enable row level security;
create policy organizations_public_read on organizations for select to anon, authenticated using (true);
create policy mentors_read on mentors for select to authenticated using (true);
create policy mentors_coordinator_update on mentors for update to authenticated using (true) with check (true);
create policy certifications_read on certifications for select to authenticated using (true);
grant select on organizations to anon, authenticated;
grant select, update on mentors to authenticated;
grant select on certifications to authenticated;
"""


@contextlib.contextmanager
def empty_database(admin_url: str, schema: str | None = None):
    name = create_database(admin_url)
    url = with_database(admin_url, name)
    try:
        if schema:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(schema)
        yield url
    finally:
        drop_database(admin_url, name)


def recorded(conn, history: str = "supabase_migrations.schema_migrations") -> list[str]:
    """Versions in the history; none when the history table was never made (a first run that failed)."""
    if to_regclass(conn, history) is None:
        return []
    return [v for (v,) in conn.execute(f"select version from {history} order by version")]


def test_applying_twice_is_a_no_op(db_url, db):
    assert migrate(db_url) == []  # the template is already migrated
    assert migrate(db_url, with_app_standin=True) == []
    assert recorded(db) == [m.version for m in discover()]


def test_fresh_database_gets_the_app_standin_then_every_migration_once(admin_url):
    with empty_database(admin_url) as url:
        first = migrate(url, with_app_standin=True)
        second = migrate(url, with_app_standin=True)
        with psycopg.connect(url) as conn:
            standin_history = recorded(conn, "supabase_migrations.app_standin_migrations")
            pipeline_history = recorded(conn)
    standin = discover(APP_STANDIN_DIR)
    assert [m.label for m in first] == [f"app stand-in {m.path.name}" for m in standin] + [
        m.path.name for m in discover()]
    assert second == []
    # The stand-in is recorded apart: the pipeline's history is exactly supabase/migrations.
    assert standin_history == [m.version for m in standin]
    assert pipeline_history == [m.version for m in discover()]


def test_pipeline_migrations_apply_on_top_of_the_apps_own_tables(admin_url):
    with empty_database(admin_url, APP_SCHEMA) as url, psycopg.connect(url, autocommit=True) as db:
        applied = migrate(url)
        assert [m.version for m in applied] == [m.version for m in discover()]

        # The app's tables are as the app made them: columns, policies, grants, its own trigger.
        assert [c for (c,) in db.execute(
            "select column_name from information_schema.columns where table_schema = 'public'"
            " and table_name = 'mentors' order by ordinal_position")] == [
            "id", "user_id", "organization_id", "chapter_id", "status", "full_name", "email", "phone", "updated_at"]
        assert sorted(p for (p,) in db.execute("select policyname from pg_policies where schemaname = 'public'"
            " and tablename in ('organizations', 'chapters', 'mentors', 'certifications')")) == [
            "certifications_read", "mentors_coordinator_update", "mentors_read", "organizations_public_read"]
        assert db.execute("select has_table_privilege('authenticated', 'mentors', 'update')").fetchone() == (True,)
        assert to_regclass(db, "supabase_migrations.app_standin_migrations") is None
        triggers = {t for (t,) in db.execute(
            "select tgname from pg_trigger where tgrelid = 'mentors'::regclass and not tgisinternal")}
        assert {"mentors_touch", "mentors_enqueue_website_sync"} <= triggers

        # And the pipeline works on them: a coordinator's update as Supabase's `authenticated`
        # role (through the app's own policy) marks the mentor for the website.
        org = db.execute("insert into organizations (code, name, website_sync_enabled) values ('HLF', 'HLF', true)"
                         " returning id").fetchone()[0]
        chapter = db.execute("insert into chapters (organization_id, name) values (%s, 'HLF Oslo') returning id",
                             (org,)).fetchone()[0]
        mentor = db.execute("insert into mentors (organization_id, chapter_id, full_name, status, email)"
                            " values (%s, %s, 'Kari Nordmann', 'active', 'kari@example.org') returning id",
                            (org, chapter)).fetchone()[0]
        db.execute("insert into certifications (mentor_id, issued_at, expires_at)"
                   " values (%s, now() - interval '1 year', now() + interval '1 year')", (mentor,))
        db.execute("delete from sync_queue")
        with db.transaction():
            db.execute("set local role authenticated")
            db.execute("update mentors set status = 'paused' where id = %s", (mentor,))
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                with db.transaction():
                    db.execute("select * from sync_queue")
        assert db.execute("select move_status_changes()").fetchone() == (1,)  # the pipeline's tick
        assert db.execute("select operation, triggered_by_event from sync_queue where mentor_id = %s",
                          (mentor,)).fetchall() == [("remove", "status_change")]
        [rule] = db.execute("select should_be_listed, reason from website_desired_listing(array[%s]::uuid[])",
                            (mentor,)).fetchall()
        assert rule == (False, "status paused")


@pytest.mark.parametrize("breaks, message", [
    ("alter table organizations drop column website_sync_enabled; alter table mentors drop column full_name",
     "column public.mentors.full_name (text), column public.organizations.website_sync_enabled (boolean)"),
    ("alter table mentors alter column status type varchar(20)",
     "column public.mentors.status as text (it is character varying(20))"),
    ("drop table certifications",
     "table public.certifications"),
])
def test_what_the_app_lacks_fails_the_first_migration_with_one_clear_line(admin_url, breaks, message):
    with empty_database(admin_url, APP_SCHEMA + breaks) as url:
        with pytest.raises(DatabaseError) as failure:
            migrate(url)
        with psycopg.connect(url) as conn:
            assert recorded(conn) == []
            assert to_regclass(conn, "sync_queue") is None  # nothing half-made
    text = str(failure.value)
    assert "\n" not in text
    assert text.startswith(f"migration {discover()[0].path.name} failed: the app's database lacks what the "
                           f"pipeline needs: {message}. ")
    assert "mentor-pipeline db migrate --with-app-standin" in text


def test_a_database_migrated_before_the_standin_moved_out_keeps_working(admin_url):
    # Such a database got the app's tables from the old first migration: the stand-in finds them
    # there, is recorded as not run, and nothing else changes.
    standin_sql = discover(APP_STANDIN_DIR)[0].sql
    with empty_database(admin_url, standin_sql) as url:
        migrate(url)
        assert migrate(url, with_app_standin=True) == []
        with psycopg.connect(url) as conn:
            assert conn.execute("select version, statements from supabase_migrations.app_standin_migrations"
                                " order by version").fetchall() == [(m.version, None) for m in discover(APP_STANDIN_DIR)]


def to_regclass(conn, name: str):
    return conn.execute("select to_regclass(%s)", (name,)).fetchone()[0]


def test_failing_migration_is_rolled_back_and_not_recorded(admin_url, tmp_path):
    (tmp_path / "20990101000000_good.sql").write_text("create table good_one (id int);")
    (tmp_path / "20990101000001_bad.sql").write_text("create table half_done (id int); select 1/0;")
    with empty_database(admin_url) as url:
        with pytest.raises(DatabaseError, match="20990101000001_bad.sql failed: division by zero"):
            migrate(url, tmp_path)
        with psycopg.connect(url) as conn:
            assert recorded(conn) == ["20990101000000"]
            assert to_regclass(conn, "half_done") is None


def test_badly_named_migration_file_is_refused(tmp_path):
    (tmp_path / "add_stuff.sql").write_text("select 1;")
    with pytest.raises(DatabaseError, match="add_stuff.sql"):
        discover(tmp_path)


def test_a_migration_edited_after_it_was_applied_stops_the_run_with_one_line(admin_url, tmp_path):
    first = tmp_path / "20990101000000_first.sql"
    first.write_text("create table first_one (id int);")
    with empty_database(admin_url) as url:
        migrate(url, tmp_path)
        first.write_text("create table first_one (id int, extra text);")
        (tmp_path / "20990101000001_second.sql").write_text("create table second_one (id int);")
        with pytest.raises(DatabaseError) as failure:
            migrate(url, tmp_path)
        assert str(failure.value) == ("20990101000000_first.sql changed after it was applied:"
                                      " restore it and write a new migration")
        with psycopg.connect(url) as conn:
            assert recorded(conn) == ["20990101000000"]
            assert to_regclass(conn, "second_one") is None  # nothing after it ran either


def test_a_history_written_by_the_supabase_cli_is_compared_statement_by_statement(admin_url, tmp_path):
    # `supabase db push` records a file split into its statements, not as one text.
    (tmp_path / "20990101000000_first.sql").write_text("create table first_one (id int);\n\ncreate table two (id int);\n")
    with empty_database(admin_url) as url:
        migrate(url, tmp_path)
        with psycopg.connect(url) as conn:
            conn.execute("update supabase_migrations.schema_migrations set statements ="
                         " array['create table first_one (id int)', 'create table two (id int)']")
        assert migrate(url, tmp_path) == []
        (tmp_path / "20990101000000_first.sql").write_text("create table first_one (id bigint);")
        with pytest.raises(DatabaseError, match="changed after it was applied"):
            migrate(url, tmp_path)
