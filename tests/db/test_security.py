"""Supabase roles: anon and authenticated see and change nothing in the pipeline's tables,
yet a status change made as `authenticated` still enqueues (SECURITY DEFINER trigger)."""

from __future__ import annotations

import psycopg
import pytest

from tests.support.factories import mentor, queue_rows

PIPELINE_TABLES = ["sync_queue", "mentor_status_audit", "mentor_status_inbox", "cert_expiry_reminders"]


def test_every_public_table_has_row_level_security(db):
    without_rls = db.execute(
        "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = 'public' and c.relkind in ('r', 'p') and not c.relrowsecurity"
    ).fetchall()
    assert without_rls == []


@pytest.mark.parametrize("role", ["anon", "authenticated"])
@pytest.mark.parametrize("table", PIPELINE_TABLES)
def test_app_roles_cannot_read_or_write_pipeline_tables(db_url, db, role, table):
    mentor(db)
    db.execute("update mentors set status = 'paused'")  # something to read in the inbox (until the move)
    with psycopg.connect(db_url) as conn:
        conn.execute(f"set role {role}")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"select * from {table}")
        conn.rollback()
        conn.execute(f"set role {role}")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"delete from {table}")


@pytest.mark.parametrize("role", ["anon", "authenticated"])
def test_app_roles_see_no_rows_without_the_apps_policies(db_url, db, role):
    mentor(db)
    db.execute(f"grant select on organizations, chapters, mentors, certifications to {role}")
    with psycopg.connect(db_url) as conn:
        conn.execute(f"set role {role}")
        for table in ["organizations", "chapters", "mentors", "certifications"]:
            assert conn.execute(f"select count(*) from {table}").fetchone()[0] == 0


def test_authenticated_status_change_enqueues_through_security_definer(db_url, db):
    mentor_id = mentor(db)
    # Stand-in for the app's own policy: coordinators may update mentors.
    db.execute("grant select, update on mentors to authenticated")
    db.execute("create policy coordinators_update_mentors on mentors for all to authenticated using (true)")

    with psycopg.connect(db_url) as conn:
        conn.execute("set role authenticated")
        conn.execute("update mentors set status = 'paused' where id = %s", (mentor_id,))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select count(*) from sync_queue")
        conn.rollback()
        conn.execute("set role authenticated")
        conn.execute("update mentors set status = 'paused' where id = %s", (mentor_id,))
        conn.commit()

    [row] = queue_rows(db, mentor_id)
    assert (row["operation"], row["status"]) == ("remove", "pending")


def test_trigger_function_is_security_definer_with_pinned_search_path(db):
    secdef, config = db.execute(
        "select prosecdef, proconfig from pg_proc where proname = 'enqueue_website_sync'"
    ).fetchone()
    assert secdef is True
    assert any(setting.startswith("search_path=") for setting in config)


def test_a_hostile_search_path_cannot_redirect_the_trigger(db_url, db):
    mentor_id = mentor(db)
    db.execute("grant select, update on mentors to authenticated")
    db.execute("create policy coordinators_update_mentors on mentors for all to authenticated using (true)")
    db.execute("create schema evil")
    db.execute("create table evil.sync_queue (like public.sync_queue)")
    db.execute("create table evil.mentor_status_inbox (like public.mentor_status_inbox)")
    db.execute("grant usage on schema evil to authenticated")

    with psycopg.connect(db_url) as conn:
        conn.execute("set role authenticated")
        conn.execute("set search_path = evil, public")
        conn.execute("update mentors set status = 'paused' where id = %s", (mentor_id,))
        conn.commit()

    assert len(queue_rows(db, mentor_id)) == 1
    assert db.execute("select count(*) from evil.sync_queue").fetchone()[0] == 0
    assert db.execute("select count(*) from evil.mentor_status_inbox").fetchone()[0] == 0


@pytest.mark.parametrize("event, allowed", [
    ("manual_coordinator_action", True),
    ("status_change", True),
    ("nightly_expiry", False),
    ("reconciliation", False),
    ("force_sync", False),
])
def test_the_app_may_mark_only_its_own_changes(db_url, db, event, allowed):
    # The pipeline's own events come only from the pipeline's role: the audit trail cannot be
    # forged from the app (PostgREST: JWT claims, `set local role authenticated`).
    mentor_id = mentor(db)
    db.execute("grant select, update on mentors to authenticated")
    db.execute("create policy test_all on mentors for all to authenticated using (true) with check (true)")
    with psycopg.connect(db_url) as conn:
        conn.execute("select set_config('request.jwt.claims', '{\"sub\": \"c1\", \"role\": \"authenticated\"}', true)")
        conn.execute("set local role authenticated")
        conn.execute("select set_config('mentor_pipeline.triggered_by_event', %s, true)", (event,))
        if allowed:
            conn.execute("update mentors set status = 'paused' where id = %s", (mentor_id,))
            conn.commit()
        else:
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="reserved for the pipeline"):
                conn.execute("update mentors set status = 'paused' where id = %s", (mentor_id,))
    rows = queue_rows(db, mentor_id)
    assert [r["triggered_by_event"] for r in rows] == ([event] if allowed else [])
    status = db.execute("select status from mentors where id = %s", (mentor_id,)).fetchone()[0]
    assert status == ("paused" if allowed else "active")


def test_the_pipeline_role_may_mark_its_own_events(db):
    mentor_id = mentor(db)
    with db.transaction():
        db.execute("select set_config('mentor_pipeline.triggered_by_event', 'reconciliation', true)")
        db.execute("update mentors set status = 'paused' where id = %s", (mentor_id,))
    assert [r["triggered_by_event"] for r in queue_rows(db, mentor_id)] == ["reconciliation"]
