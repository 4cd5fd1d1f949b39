"""Failed runs are incidents per job: the first error line (never a secret) is posted once, and
the job's next successful run resolves it."""

import dagster as dg
import pytest

from mentor_pipeline.definitions import defs
from mentor_pipeline.operations.sensors import run_failure_alert_sensor, run_success_resolve_sensor
from mentor_pipeline.operations.store import get_incident

SECRET = "s3cr3t-client-secret-value"


class Behaviour(dg.Config):
    fail_with: str = ""  # "", "failure" (dg.Failure) or "exception"


@dg.op
def step(config: Behaviour) -> None:
    if config.fail_with == "failure":
        raise dg.Failure(description=f"Dynamics authentication failed: AADSTS7000215 (client_secret={SECRET})\n"
                                     "second line nobody needs")
    if config.fail_with == "exception":
        try:
            raise ValueError("the cause")
        except ValueError as exc:
            raise RuntimeError("cannot connect to postgresql://pipeline:hunter2-db-pw@db.example/app") from exc


@dg.job
def flaky_job():
    step()


@dg.job
def other_job():
    step()


@pytest.fixture
def instance():
    with dg.instance_for_test() as test_instance:
        yield test_instance


def run(job, instance, sink, fail_with=""):
    """Run the job, then what the daemon does after it: the failure or the success sensor."""
    result = job.execute_in_process(run_config={"ops": {"step": {"config": {"fail_with": fail_with}}}},
                                    instance=instance, raise_on_error=False)
    if result.success:
        [entry] = instance.all_logs(result.run_id, of_type=dg.DagsterEventType.RUN_SUCCESS)
        event = entry.dagster_event
        context = dg.build_run_status_sensor_context(
            sensor_name="run_success_resolve_sensor", dagster_event=event, dagster_instance=instance,
            dagster_run=result.dagster_run, resources={"alerts": sink})
        run_success_resolve_sensor(context)
    else:
        context = dg.build_run_status_sensor_context(
            sensor_name="run_failure_alert_sensor", dagster_event=result.get_run_failure_event(),
            dagster_instance=instance, dagster_run=result.dagster_run, resources={"alerts": sink},
        ).for_run_failure()
        run_failure_alert_sensor(context)
    return result


def test_a_failing_job_is_one_incident_with_its_first_error_line_resolved_by_the_next_success(db, sink, webhook, instance):
    first = run(flaky_job, instance, sink, "failure")
    run(flaky_job, instance, sink, "failure")
    run(flaky_job, instance, sink, "failure")

    [post] = webhook.posts
    assert (post["kind"], post["scope"], post["state"], post["count"]) == ("run_failed", "flaky_job", "open", 1)
    assert post["summary"] == ("Dagster run of flaky_job failed: step: Dynamics authentication failed: AADSTS7000215 "
                               "(client_secret=<redacted>)")
    assert post["details"] == {"run_id": first.run_id, "job_name": "flaky_job"}
    assert get_incident(db, "run_failed", "flaky_job").occurrences == 3

    run(flaky_job, instance, sink)
    run(flaky_job, instance, sink)
    assert [(p["state"], p["count"]) for p in webhook.posts] == [("open", 1), ("resolved", 3)]
    assert "of flaky_job succeeded" in webhook.posts[1]["summary"]
    assert SECRET not in str(webhook.posts)


def test_an_exception_gives_its_own_line_and_each_job_has_its_own_incident(db, sink, webhook, instance):
    run(flaky_job, instance, sink, "exception")
    run(other_job, instance, sink, "failure")
    run(other_job, instance, sink)  # resolves other_job only
    assert [(p["incident"], p["state"]) for p in webhook.posts] == [
        ("run_failed:flaky_job", "open"), ("run_failed:other_job", "open"), ("run_failed:other_job", "resolved")]
    assert webhook.posts[0]["summary"] == ("Dagster run of flaky_job failed: step: RuntimeError: cannot connect to "
                                           "postgresql://<redacted>@db.example/app")  # user info goes whole
    assert get_incident(db, "run_failed", "flaky_job").state == "open"


def test_the_code_location_runs_both_sensors():
    repo = defs.get_repository_def()
    for name in ("run_failure_alert_sensor", "run_success_resolve_sensor"):
        assert repo.get_sensor_def(name).default_status == dg.DefaultSensorStatus.RUNNING
