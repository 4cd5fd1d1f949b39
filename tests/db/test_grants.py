"""Under Supabase's default grants (applied before the migrations, tests/support/db.py), the app
roles anon and authenticated get nothing on the pipeline's sequences, tables, views and
functions: only the app's own tables keep Supabase's grants (RLS guards those)."""

from __future__ import annotations

import psycopg
import pytest

from tests.support.factories import mentor, queue_rows

APP_ROLES = ["anon", "authenticated"]
# The app's tables (stand-ins here; the app owns their grants and policies).
APP_TABLES = {"organizations", "chapters", "mentors", "certifications"}
# What the app uses on purpose (supabase/schemas/60_coordinators.sql): authenticated reads its own
# coordinators rows (RLS) and calls the dashboard's two functions, which check who is asking.
APP_FACING = {"anon": set(), "authenticated": {"coordinators", "request_website_sync(uuid)", "website_sync_status(uuid)"}}
SEQUENCES = ["sync_queue_id_seq", "mentor_status_audit_id_seq", "mentor_status_inbox_id_seq",
             "cert_expiry_reminders_id_seq", "certification_state_runs_id_seq", "coordinator_notifications_id_seq",
             "reconciliation_log_id_seq"]


def test_supabase_default_grants_are_in_force_for_new_objects(db):
    # Guards the premise of every test here: a table created now is open to anon.
    db.execute("create table probe (id int)")
    assert db.execute("select has_table_privilege('anon', 'probe', 'select')").fetchone() == (True,)


@pytest.mark.parametrize("role", APP_ROLES)
@pytest.mark.parametrize("call", ["nextval('{seq}')", "setval('{seq}', 1000000)", "currval('{seq}')"],
                         ids=["nextval", "setval", "currval"])
@pytest.mark.parametrize("sequence", SEQUENCES)
def test_app_roles_cannot_use_the_pipelines_sequences(db_url, db, role, call, sequence):
    before = db.execute(f"select last_value, is_called from {sequence}").fetchone()
    with psycopg.connect(db_url) as conn:
        conn.execute(f"set role {role}")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match=f"permission denied for sequence {sequence}"):
            conn.execute("select " + call.format(seq=sequence))
    assert db.execute(f"select last_value, is_called from {sequence}").fetchone() == before


def test_a_refused_setval_leaves_status_changes_working(db_url, db):
    mentor_id = mentor(db)
    with psycopg.connect(db_url) as conn:
        conn.execute("set role authenticated")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select setval('sync_queue_id_seq', 9223372036854775807)")
    db.execute("update mentors set status = 'paused' where id = %s", (mentor_id,))
    rows = queue_rows(db, mentor_id)
    assert (rows[-1]["operation"], rows[-1]["status"], rows[-1]["triggered_by_event"]) == ("remove", "pending", "status_change")
    assert rows[-1]["id"] < 1000


def pipeline_objects(db, kinds: str) -> list[str]:
    rows = db.execute(
        "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = 'public' and c.relkind = any(%s) order by 1", (list(kinds),)).fetchall()
    return [name for (name,) in rows if name not in APP_TABLES]


@pytest.mark.parametrize("role", APP_ROLES)
def test_no_pipeline_sequence_is_granted_to_app_roles(db, role):
    sequences = pipeline_objects(db, "S")
    assert set(SEQUENCES) <= set(sequences)
    granted = [s for s in sequences
               if db.execute("select has_sequence_privilege(%s, %s, 'usage, select, update')", (role, s)).fetchone()[0]]
    assert granted == []


@pytest.mark.parametrize("role", APP_ROLES)
def test_no_pipeline_table_or_view_is_granted_to_app_roles(db, role):
    relations = pipeline_objects(db, "rvmp")
    assert {"sync_queue", "mentor_status_inbox", "certification_state", "organization_expiry_thresholds"} <= set(relations)
    granted = [r for r in relations if db.execute(
        "select has_table_privilege(%s, %s, 'select, insert, update, delete, truncate, references, trigger')",
        (role, r)).fetchone()[0]]
    assert set(granted) == APP_FACING[role] & set(relations)


@pytest.mark.parametrize("role", APP_ROLES)
def test_no_pipeline_function_is_granted_to_app_roles(db, role):
    functions = db.execute(
        "select p.oid::regprocedure::text, has_function_privilege(%s, p.oid, 'execute')"
        " from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
        " where n.nspname = 'public'"
        "   and not exists (select from pg_depend d where d.objid = p.oid and d.deptype = 'e')"
        " order by 1", (role,)).fetchall()
    assert len(functions) > 20
    assert {name for name, executable in functions if executable} == APP_FACING[role] - {"coordinators"}


def test_service_role_keeps_what_the_pipeline_needs(db_url, db):
    # In Supabase the pipeline may connect as service_role (which also bypasses RLS there):
    # Supabase's grants stay in force for it, sequences and functions included.
    with psycopg.connect(db_url) as conn:
        conn.execute("set role service_role")
        assert conn.execute("select nextval('sync_queue_id_seq')").fetchone() == (1,)
        assert conn.execute("select due_count from sync_queue_due()").fetchone() == (0,)
        assert conn.execute("select oslo_date(expiry_run_start('2026-06-15'))").fetchone()[0].isoformat() == "2026-06-15"
        assert conn.execute("select * from create_expiry_reminders('2026-06-15', '2026-06-15')").fetchall() == []
