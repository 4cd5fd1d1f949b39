"""Twice in a row, twice at the same time (two processes), killed midway: the same reminders,
notifications and transitions as one clean run. Compared against a clean run on a twin database."""

from __future__ import annotations

import os
import signal

import psycopg
import pytest

from mentor_pipeline.expiry.dates import today_in_oslo
from tests.expiry.helpers import build_scenario, outcome, run_expiry_sql
from tests.support.cli import start_cli
from tests.support.db import fresh_database, wait_for_lock_waiters

# Tonight, as the CLI runs it (reminders are sent today, so the night must be today's).
NIGHT = today_in_oslo()


@pytest.fixture
def clean_outcome(admin_url, migrated_template):
    """What one clean run produces for the scenario, on a database of its own."""
    with fresh_database(admin_url, migrated_template) as url, psycopg.connect(url, autocommit=True) as conn:
        build_scenario(conn, NIGHT)
        run_expiry_sql(conn, NIGHT)
        result = outcome(conn)
    # The scenario exercises everything: reminders, notifications, HLF removals, NHF transitions.
    assert result["reminders"] and len(result["notifications"]) == len(result["reminders"])
    assert {row[2] for row in result["sync_queue"]} == {"nightly_expiry"}
    assert any(row[0].startswith("NHF active") and row[3] == "nightly_expiry" for row in result["audit"])
    return result


def test_twice_in_a_row_equals_one_clean_run(db, clean_outcome):
    build_scenario(db, NIGHT)
    run_expiry_sql(db, NIGHT)
    run_expiry_sql(db, NIGHT)
    assert outcome(db) == clean_outcome


def test_two_processes_at_the_same_time_equal_one_clean_run(db_url, db, clean_outcome):
    build_scenario(db, NIGHT)
    with psycopg.connect(db_url) as gate:
        # Hold both runs at their first statement so they really overlap, then let them race.
        gate.execute("lock table mentors in exclusive mode")
        runs = [start_cli("expiry", "--date", NIGHT.isoformat(), env={"DATABASE_URL": db_url}) for _ in range(2)]
        wait_for_lock_waiters(db, 2)
        gate.rollback()
    outputs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs

    assert outcome(db) == clean_outcome
    # Between them they report each reminder once.
    reported = sum(int(out.split("reminders: ")[1].split(" new")[0]) for out, _ in outputs)
    assert reported == len(clean_outcome["reminders"])


@pytest.mark.parametrize(
    ("blocked_table", "committed_before_the_kill"),
    [
        # The trigger's inbox insert waits: killed inside the transition, with mentors already updated.
        ("mentor_status_inbox", {"transitions": False, "reminders": False}),
        # Killed inside the reminders statement, after transitions and the state snapshot committed.
        ("coordinator_notifications", {"transitions": True, "reminders": False}),
    ],
    ids=["during-transitions", "during-reminders"],
)
def test_killed_midway_then_rerun_equals_one_clean_run(db_url, db, clean_outcome, blocked_table, committed_before_the_kill):
    build_scenario(db, NIGHT)
    with psycopg.connect(db_url) as blocker:
        blocker.execute(f"lock table {blocked_table} in share mode")
        run = start_cli("expiry", "--date", NIGHT.isoformat(), env={"DATABASE_URL": db_url})
        [backend_pid] = wait_for_lock_waiters(db, 1)
        os.kill(run.pid, signal.SIGKILL)
        run.wait(30)
        # The database notices the dead client and rolls its open transaction back.
        db.execute("select pg_terminate_backend(%s)", (backend_pid,))
        blocker.rollback()

    partial = outcome(db)
    transitioned = any(row[3] == "nightly_expiry" for row in partial["audit"])
    assert transitioned == committed_before_the_kill["transitions"]
    assert bool(partial["reminders"]) == committed_before_the_kill["reminders"]
    assert partial["notifications"] == [] and partial["reminders"] == []

    rerun = start_cli("expiry", "--date", NIGHT.isoformat(), env={"DATABASE_URL": db_url})
    out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err
    assert outcome(db) == clean_outcome


def test_rerunning_a_past_night_after_later_nights_adds_nothing(db):
    from datetime import timedelta

    last_night = NIGHT - timedelta(days=1)
    build_scenario(db, last_night)
    run_expiry_sql(db, last_night)
    run_expiry_sql(db, NIGHT)
    after_next_night = outcome(db)
    assert after_next_night["reminders"]
    run_expiry_sql(db, last_night)
    again = outcome(db)
    for table in ["reminders", "notifications", "sync_queue", "audit", "statuses"]:
        assert again[table] == after_next_night[table]
