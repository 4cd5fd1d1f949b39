"""The drift watch in Dagster: its job's run materialises dynamics_drift with the drift per look
and its checks; the sensor's decisions; the interval from the environment."""

from __future__ import annotations

import dagster as dg
import pytest

from mentor_pipeline.drift.definitions import defs as drift_defs
from mentor_pipeline.drift.sensors import drift_watch_sensor, interval_seconds
from mentor_pipeline.operations.alerts import AlertSink
from mentor_pipeline.resources import AppDatabase
from tests.support.stack import stack_resources
from tests.sync.helpers import hlf_mentors, seed_contacts


@pytest.fixture
def instance():
    with dg.instance_for_test() as test_instance:
        yield test_instance


@pytest.fixture
def job(db_url, emulator, alerts):
    resources = stack_resources(db_url, emulator, alerts)
    defs = dg.Definitions(assets=list(drift_defs.assets), jobs=list(drift_defs.jobs), resources=resources)
    return defs.resolve_job_def("drift_watch_job")


def checks(result) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def metadata(result) -> dict:
    [materialization] = result.asset_materializations_for_node("dynamics_drift")
    return {k: v.value for k, v in materialization.metadata.items()}


def test_each_look_is_a_run_that_shows_the_drift_it_found_and_marked(db, emulator, instance, job):
    mentors = [str(m) for m in hlf_mentors(db, 2)]
    seed_contacts(emulator, mentors)
    first = job.execute_in_process(instance=instance)
    assert (metadata(first)["read"], metadata(first)["drift_found"]) == ("full", 0)

    emulator.admin.edit_contact(mentors[0], listed=False)
    result = job.execute_in_process(instance=instance)
    shown = metadata(result)
    assert (shown["read"], shown["drift_found"], shown["drift_queued"], shown["requests"]) == ("delta", 1, 1, 1)
    assert mentors[0] in shown["drift"]
    assert checks(result) == {"change_tracking_readable": True, "no_contact_fights_the_pipeline": True}
    assert db.execute("select mentor_id::text, triggered_by_event from sync_queue where status = 'pending'"
                      ).fetchall() == [(mentors[0], "dynamics_drift")]


def test_tracking_off_fails_its_check_in_the_ui(db, emulator, instance, job):
    emulator.admin.set_change_tracking(False)
    result = job.execute_in_process(instance=instance)
    assert result.success and checks(result)["change_tracking_readable"] is False
    assert "Track changes" in metadata(result)["tracking_off"]


def test_the_sensor_requests_a_look_unless_one_runs_or_sign_in_is_broken(db, db_url, instance, job):
    def tick():
        context = dg.build_sensor_context(instance=instance, resources={"app_db": AppDatabase(url=db_url)})
        return drift_watch_sensor(context)

    assert isinstance(tick(), dg.RunRequest)
    run = instance.create_run_for_job(job_def=job)  # a look not finished yet
    assert "is still not_started" in tick().skip_message
    instance.report_run_failed(run)
    assert isinstance(tick(), dg.RunRequest)  # a finished look does not hold the next one
    AlertSink(database_url=db_url).alert("dynamics_auth_wrong_secret", "the client secret is wrong")
    assert "dynamics_auth_wrong_secret open" in tick().skip_message


def test_the_interval_comes_from_the_environment():
    assert interval_seconds({}) == 180
    assert interval_seconds({"MENTOR_PIPELINE_DRIFT_WATCH_MINUTES": "0.5"}) == 30
    with pytest.raises(ValueError, match="MENTOR_PIPELINE_DRIFT_WATCH_MINUTES must be a positive number"):
        interval_seconds({"MENTOR_PIPELINE_DRIFT_WATCH_MINUTES": "soon"})
