"""mentor_pipeline/vocabulary.py says the same as the migrated database: each enum against the
check constraint or function that holds its list in SQL, in both directions (a word SQL gained
and Python lacks fails as much as the other way round)."""

from __future__ import annotations

import re

from mentor_pipeline.vocabulary import Classification, DriftAction, DriftField, QueueStatus, SyncOutcome, TriggerEvent


def literals(sql: str) -> set[str]:
    return set(re.findall(r"'([^']*)'", sql))


def constraint(db, table: str, name: str) -> str:
    (definition,) = db.execute(
        "select pg_get_constraintdef(oid) from pg_constraint where conrelid = %s::regclass and conname = %s",
        (table, name)).fetchone()
    return definition


def assert_same(sql: set[str], enum) -> None:
    python = {member.value for member in enum}
    assert sql == python, f"only in SQL: {sorted(sql - python)}; only in {enum.__name__}: {sorted(python - sql)}"


def test_queue_statuses_are_sync_queues_check(db):
    assert_same(literals(constraint(db, "sync_queue", "sync_queue_status_check")), QueueStatus)


def test_a_waiting_change_is_the_same_pair_in_sql_and_python(db):
    rows = db.execute("select s, sync_change_waiting(s) from unnest(%s::text[]) s", ([s.value for s in QueueStatus],))
    assert {status for status, waiting in rows if waiting} == set(QueueStatus.WAITING)
    assert set(QueueStatus.WAITING) <= {s.value for s in QueueStatus}


def test_trigger_events_are_sync_trigger_events(db):
    assert "sync_trigger_events()" in constraint(db, "sync_queue", "sync_queue_triggered_by_event_check")
    (events,) = db.execute("select sync_trigger_events()").fetchone()
    assert_same(set(events), TriggerEvent)


def test_outcomes_are_the_ones_record_sync_outcomes_decides_on(db):
    (body,) = db.execute("select pg_get_functiondef('record_sync_outcomes'::regproc)").fetchone()
    handled = set()
    for single, listed in re.findall(r"\.outcome\s*(?:=\s*'(\w+)'|in\s*\(([^)]*)\))", body):
        handled |= {single} if single else literals(listed)
    assert_same(handled, SyncOutcome)
    # The outcomes store.record_outcomes (sync) records one row per transaction: those SQL puts back to pending.
    back_to_pending = re.search(r"outcome in \(([^)]*)\) then 'pending'", body)
    assert set(SyncOutcome.BACK_TO_PENDING) == literals(back_to_pending[1])


def test_classifications_are_reconciliation_logs_check(db):
    check = constraint(db, "reconciliation_log", "reconciliation_log_classification_check")
    assert_same(literals(check), Classification)


def test_drift_fields_and_actions_are_dynamics_drifts_checks(db):
    assert_same(literals(constraint(db, "dynamics_drift", "dynamics_drift_field_check")), DriftField)
    assert_same(literals(constraint(db, "dynamics_drift", "dynamics_drift_action_check")), DriftAction)
