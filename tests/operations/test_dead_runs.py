"""A run whose worker died is failed within a minute, whatever launcher started it: the run beats
a heartbeat into the app database, and dead_run_sensor fails a STARTED Dynamics run whose
heartbeat went silent. Real PostgreSQL, a test Dagster instance."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import dagster as dg
import pytest

from mentor_pipeline.operations import liveness
from mentor_pipeline.operations.sensors import dead_run_sensor
from mentor_pipeline.resources import DYNAMICS_TAG, AppDatabase
from tests.support.polling import wait_for


@pytest.fixture
def instance():
    with dg.instance_for_test() as test_instance:
        yield test_instance


def started_run(instance, tags: dict[str, str]) -> dg.DagsterRun:
    run = dg.DagsterRun(job_name="website_sync_job", run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.STARTED,
                        tags=tags)
    return instance.add_run(run)


def beat_ago(db, run_id: str, seconds: float) -> None:
    db.execute("select beat_run_heartbeat(%s, 'website_sync_job', 'host-a:42', now() - make_interval(secs => %s))",
               (run_id, seconds))


def heartbeats(db) -> list[str]:
    return [row[0] for row in db.execute("select run_id from run_heartbeats order by run_id").fetchall()]


def test_a_run_beats_while_it_executes_and_leaves_no_heartbeat_when_it_ends(db, db_url):
    import psycopg

    with liveness.beating(lambda: psycopg.connect(db_url), "run-1", "website_sync_job", every=timedelta(seconds=0.1)):
        wait_for(lambda: heartbeats(db) == ["run-1"], timeout=10)
        [(first,)] = db.execute("select beat_at from run_heartbeats").fetchall()
        wait_for(lambda: db.execute("select beat_at from run_heartbeats").fetchone()[0] > first, timeout=10)
    assert heartbeats(db) == []


def test_a_run_with_a_silent_heartbeat_is_failed_with_the_reason_and_live_ones_are_left_alone(db, db_url, instance):
    dead = started_run(instance, {DYNAMICS_TAG: "website_sync"})
    alive = started_run(instance, {DYNAMICS_TAG: "reconciliation"})
    other = started_run(instance, {})  # a run with no Dynamics step never beats
    beat_ago(db, dead.run_id, liveness.SILENT_AFTER.total_seconds() + 5)
    beat_ago(db, alive.run_id, 2)

    context = dg.build_sensor_context(instance=instance, resources={"app_db": AppDatabase(url=db_url)})
    result = dead_run_sensor(context)

    assert dead.run_id in result.skip_message
    assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.FAILURE
    assert instance.get_run_by_id(alive.run_id).status == dg.DagsterRunStatus.STARTED
    assert instance.get_run_by_id(other.run_id).status == dg.DagsterRunStatus.STARTED
    [failure] = [e for e in instance.all_logs(dead.run_id) if e.dagster_event and e.dagster_event.is_run_failure]
    assert "host-a:42" in failure.message and "stopped sending heartbeats" in failure.message
    assert heartbeats(db) == [alive.run_id]

    # The next look finds nothing more to do.
    assert "none with a silent heartbeat" in dead_run_sensor(context).skip_message


def test_a_run_that_beat_a_moment_ago_is_not_dead_however_long_it_has_run(db, db_url, instance):
    run = started_run(instance, {DYNAMICS_TAG: "website_sync"})
    beat_ago(db, run.run_id, 0)
    time.sleep(0.1)
    context = dg.build_sensor_context(instance=instance, resources={"app_db": AppDatabase(url=db_url)})
    dead_run_sensor(context)
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED
