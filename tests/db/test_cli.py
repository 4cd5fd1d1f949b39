"""`mentor-pipeline db ...` and `mentor-pipeline mentor ...` as an operator runs them."""

from __future__ import annotations

import time

import psycopg

from tests.support.cli import run_cli, start_cli
from tests.support.factories import queue_rows


def test_db_url_prints_the_configured_url(db_url):
    result = run_cli("db", "url", "--show-password", env={"DATABASE_URL": db_url})
    assert result.returncode == 0
    assert result.stdout.strip() == db_url


def test_migrate_reports_up_to_date_and_seed_is_repeatable(db_url, db):
    assert run_cli("db", "migrate", env={"DATABASE_URL": db_url}).stdout.strip() == "database is up to date"
    first = run_cli("db", "seed", env={"DATABASE_URL": db_url})
    second = run_cli("db", "seed", env={"DATABASE_URL": db_url})
    assert first.returncode == second.returncode == 0
    assert "demo data loaded" in first.stdout and "(0 new mentors)" in second.stdout
    counts = db.execute(
        "select o.code, o.website_sync_enabled, count(m.id), count(distinct m.status)"
        " from organizations o join mentors m on m.organization_id = o.id group by 1, 2 order by 1"
    ).fetchall()
    assert [(code, sync) for code, sync, *_ in counts] == [("HLF", True), ("NHF", False)]
    assert all(mentors >= 10 and statuses == 3 for _, _, mentors, statuses in counts)
    # Level-triggered: each new HLF mentor is marked for a write of what the rule says; NHF is not.
    marked = db.execute(
        "select q.operation, d.should_be_listed, q.triggered_by_event from sync_queue q"
        " join mentor_website_desired_state d on d.mentor_id = q.mentor_id where q.status = 'pending'"
    ).fetchall()
    (certified_hlf,) = db.execute(
        "select count(*) from mentors m join organizations o on o.id = m.organization_id and o.code = 'HLF'"
        " where exists (select from certifications c where c.mentor_id = m.id)").fetchone()
    assert len(marked) == certified_hlf > 10
    assert all((op == "add") == listed and event == "certification_change" for op, listed, event in marked)


def test_migrate_needs_the_apps_tables_or_the_standin_flag(admin_url):
    from mentor_pipeline.db.connection import with_database
    from tests.support.db import create_database, drop_database

    name = create_database(admin_url)
    try:
        url = with_database(admin_url, name)
        refused = run_cli("db", "migrate", env={"DATABASE_URL": url})
        assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        assert "lacks what the pipeline needs: table public.certifications, table public.chapters" in refused.stderr
        demo = run_cli("db", "migrate", "--with-app-standin", env={"DATABASE_URL": url})
        assert demo.returncode == 0, demo.stderr
        assert demo.stdout.splitlines()[:3] == [
            "applied app stand-in 20261123000000_app_tables.sql", "applied app stand-in 20261206000000_mentor_statuses.sql",
            "applied 20261123000100_foundation.sql"]
    finally:
        drop_database(admin_url, name)


def test_unreachable_database_is_one_clear_line(tmp_path):
    result = run_cli("db", "migrate", env={"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nowhere"})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("mentor-pipeline db: error: cannot connect to postgresql://<redacted>@127.0.0.1:1/nowhere")
    assert "Traceback" not in result.stderr


def test_set_status_goes_through_the_trigger(db_url, db):
    run_cli("db", "seed", env={"DATABASE_URL": db_url})
    result = run_cli("mentor", "set-status", "Ingrid Hansen", "paused", "--as-coordinator", env={"DATABASE_URL": db_url})
    assert result.returncode == 0, result.stderr
    assert "Ingrid Hansen: active -> paused" in result.stdout
    [row] = [r for r in queue_rows(db) if r["triggered_by_event"] != "certification_change"]
    assert (row["operation"], row["triggered_by_event"]) == ("remove", "manual_coordinator_action")


def test_set_status_during_another_move_waits_for_it_and_reports_its_own_change(db_url, db):
    run_cli("db", "seed", env={"DATABASE_URL": db_url})
    with psycopg.connect(db_url) as mover:  # the sensor's tick, moving at that moment
        mover.execute("select move_status_changes()")
        cli = start_cli("mentor", "set-status", "Ingrid Hansen", "paused", env={"DATABASE_URL": db_url})
        time.sleep(1.5)
        assert cli.poll() is None, "set-status waits for the move in progress"
    out, err = cli.communicate(timeout=30)
    assert cli.returncode == 0, err
    assert "website sync queued: remove" in out


def test_set_status_with_unknown_mentor_changes_nothing(db_url, db):
    run_cli("db", "seed", env={"DATABASE_URL": db_url})
    before = queue_rows(db)
    result = run_cli("mentor", "set-status", "Nobody Here", "paused", env={"DATABASE_URL": db_url})
    assert result.returncode == 1
    assert "no mentor with id or name 'Nobody Here'" in result.stderr
    assert queue_rows(db) == before
