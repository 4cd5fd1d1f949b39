"""The Dagster side: sync_queue_sensor's decisions, the website_listing asset and its job,
the run-failure alerts. Real PostgreSQL, the emulator over HTTP, an ephemeral instance."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from mentor_pipeline.operations.alerts import AlertSink
from mentor_pipeline.operations.sensors import run_failure_alert_sensor
from mentor_pipeline.operations.store import get_incident
from mentor_pipeline.resources import AppDatabase, DynamicsResource, SyncSettings, dynamics_resource_for
from mentor_pipeline.sync import Drain
from mentor_pipeline.sync.assets import website_listing
from mentor_pipeline.sync.definitions import defs as sync_defs
from mentor_pipeline.sync.sensors import sync_queue_sensor
from tests.support.factories import move_status_changes, queue_rows
from tests.support.stack import stack_resources
from tests.sync.helpers import hlf_mentors, seed_contacts, sent_writes, set_statuses


@pytest.fixture
def instance():
    with dg.instance_for_test() as test_instance:
        yield test_instance


@pytest.fixture
def resources(db_url, emulator, alerts):
    return stack_resources(db_url, emulator, alerts, linger_seconds=0)


@pytest.fixture
def test_defs(resources):
    """The sync domain's definitions with the test resources (no linger: runs end at once)."""
    return dg.Definitions(
        assets=list(sync_defs.assets), jobs=list(sync_defs.jobs), sensors=list(sync_defs.sensors), resources=resources,
    )


def evaluate(instance, db_url, cursor=None, **resources):
    """One tick of sync_queue_sensor (Dynamics unconfigured and alerts log-only unless given)."""
    resources = {"app_db": AppDatabase(url=db_url), "dynamics": DynamicsResource(),
                 "alerts": AlertSink(database_url=db_url), "sync_settings": SyncSettings(), **resources}
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)
    return sync_queue_sensor(context)


# -- sync_queue_sensor --------------------------------------------------------------------------

def test_sensor_skips_when_nothing_is_due(db, db_url, instance):
    hlf_mentors(db, 2)  # no status change: nothing queued
    result = evaluate(instance, db_url)
    assert isinstance(result, dg.SkipReason) and "nothing due" in result.skip_message


def test_sensor_requests_one_run_with_a_fresh_run_key_and_advances_its_cursor(db, db_url, instance):
    mentors = hlf_mentors(db, 3)
    set_statuses(db, mentors, "paused")
    max_id = max(r["id"] for r in queue_rows(db))

    first = evaluate(instance, db_url)
    assert isinstance(first, dg.SensorResult) and len(first.run_requests) == 1  # one run drains all three
    assert json.loads(first.cursor)["seq"] == 1 and json.loads(first.cursor)["max_due_id"] == max_id
    assert first.run_requests[0].run_key.startswith(f"website-sync-1-q{max_id}-")
    assert first.run_requests[0].tags["mentor_pipeline/due_rows"] == "3"

    second = evaluate(instance, db_url, cursor=first.cursor)  # the run has not taken them yet
    assert json.loads(second.cursor)["seq"] == 2
    assert second.run_requests[0].run_key != first.run_requests[0].run_key

    reset = evaluate(instance, db_url, cursor=None)  # even after a cursor reset the key is new
    assert reset.run_requests[0].run_key not in {first.run_requests[0].run_key, second.run_requests[0].run_key}


def test_sensor_skips_while_a_sync_run_is_queued_or_running(db, db_url, instance, test_defs):
    mentors = hlf_mentors(db, 1)
    set_statuses(db, mentors, "paused")
    job = test_defs.resolve_job_def("website_sync_job")
    run = instance.create_run_for_job(job_def=job)  # NOT_STARTED: launched, not yet running
    result = evaluate(instance, db_url)
    assert isinstance(result, dg.SkipReason) and run.run_id in result.skip_message

    instance.report_run_canceled(run)
    assert isinstance(evaluate(instance, db_url), dg.SensorResult)


def test_a_run_failing_on_sign_in_just_as_the_sensor_looks_starts_no_second_run(
    db, db_url, instance, test_defs, monkeypatch
):
    set_statuses(db, hlf_mentors(db, 1), "paused")
    run = instance.create_run_for_job(job_def=test_defs.resolve_job_def("website_sync_job"))
    asked = instance.get_run_records

    def the_run_fails_on_sign_in_as_the_sensor_asks(*args, **kwargs):
        # What a failing drain does: open the sign-in incident, then end (failed).
        AlertSink(database_url=db_url).alert("dynamics_auth_wrong_secret", "the client secret is wrong")
        instance.report_run_failed(run)
        return asked(*args, **kwargs)

    monkeypatch.setattr(instance, "get_run_records", the_run_fails_on_sign_in_as_the_sensor_asks)
    result = evaluate(instance, db_url)

    assert isinstance(result, dg.SkipReason), "a second run was started while sign-in was known to be broken"
    assert "dynamics_auth_wrong_secret open: no drain" in result.skip_message


def test_sensor_starts_no_drain_while_the_secret_is_wrong_rechecks_rarely_and_resumes_once_it_works(
    db, db_url, instance, connect, emulator, alerts, webhook
):
    mentors = hlf_mentors(db, 2)
    seed_contacts(emulator, mentors)
    set_statuses(db, mentors, "paused")
    emulator.admin.rotate_secret("rotated-by-hlf-it")
    with emulator.client() as client:
        Drain(connect, client, alerts=alerts).run()  # the first drain meets the wrong secret
    assert webhook.kinds() == ["dynamics_auth_wrong_secret"]
    resources = {"dynamics": dynamics_resource_for(emulator.settings()), "alerts": alerts,
                 "sync_settings": SyncSettings(credential_check_minutes=2)}

    def sign_ins():
        return len(emulator.admin.token_requests())

    def two_minutes_pass():
        db.execute("update incidents set last_seen = last_seen - interval '2 minutes 1 second'")

    before = sign_ins()
    held = evaluate(instance, db_url, **resources)
    assert isinstance(held, dg.SkipReason)
    assert "dynamics_auth_wrong_secret open: no drain, 2 change(s) kept pending" in held.skip_message
    assert sign_ins() == before, "no sign-in within two minutes of the last failure"

    two_minutes_pass()
    checked = evaluate(instance, db_url, **resources)
    assert not checked.run_requests and "credential check still fails" in checked.skip_reason.skip_message
    assert sign_ins() > before
    assert webhook.kinds() == ["dynamics_auth_wrong_secret"], "a failed check counts, it does not post again"
    assert get_incident(db, "dynamics_auth_wrong_secret").occurrences == 2

    before = sign_ins()
    again = evaluate(instance, db_url, cursor=checked.cursor, **resources)
    assert isinstance(again, dg.SkipReason) and sign_ins() == before

    emulator.admin.rotate_secret(emulator.options.client_secret)  # HLF IT restores the secret we have
    two_minutes_pass()
    cursor = json.loads(checked.cursor)
    cursor["credentials_checked_at"] -= 121
    resumed = evaluate(instance, db_url, cursor=json.dumps(cursor), **resources)
    assert len(resumed.run_requests) == 1
    assert [(p["kind"], p["state"]) for p in webhook.posts] == [
        ("dynamics_auth_wrong_secret", "open"), ("dynamics_auth_wrong_secret", "resolved")]
    assert {(r["status"], r["attempts"]) for r in queue_rows(db)} == {("pending", 0)}, "rows kept, untouched"
    assert sent_writes(emulator) == []


def test_sensor_checks_the_credentials_even_when_nothing_is_due(db, db_url, instance, emulator, alerts, webhook):
    alerts.alert("dynamics_auth_expired_secret", "the Dynamics client secret has expired (AADSTS7000222)")
    db.execute("update incidents set last_seen = last_seen - interval '1 hour'")
    result = evaluate(instance, db_url, dynamics=dynamics_resource_for(emulator.settings()), alerts=alerts)
    assert isinstance(result, dg.SensorResult) and not result.run_requests
    assert result.skip_reason.skip_message == "nothing due in sync_queue" and "credentials_checked_at" in json.loads(result.cursor)
    assert [p["state"] for p in webhook.posts] == ["open", "resolved"]


def test_sensor_requests_a_run_for_expired_leases(db, db_url, instance):
    mentors = hlf_mentors(db, 1)
    set_statuses(db, mentors, "paused")
    move_status_changes(db)  # the claim of the processor that died moved the change first
    db.execute("update sync_queue set status = 'processing', locked_until = now() - interval '1 second'")
    result = evaluate(instance, db_url)
    assert isinstance(result, dg.SensorResult)
    assert result.run_requests[0].tags["mentor_pipeline/expired_leases"] == "1"


# -- website_listing asset and website_sync_job ---------------------------------------------------

def test_sync_job_materialises_website_listing_with_metadata(db, emulator, instance, test_defs):
    mentors = hlf_mentors(db, 4)
    seed_contacts(emulator, mentors)
    set_statuses(db, mentors[:3], "paused")

    job = test_defs.resolve_job_def("website_sync_job")
    assert job.executor_def.name == "in_process"
    result = job.execute_in_process(instance=instance)

    assert result.success
    [materialization] = result.asset_materializations_for_node("website_listing")
    metadata = {k: v.value for k, v in materialization.metadata.items()}
    assert (metadata["applied"], metadata["skipped_superseded"], metadata["retried"], metadata["dead"]) == (3, 0, 0, 0)
    assert 0 <= metadata["lag_p50_seconds"] <= metadata["lag_p95_seconds"] <= metadata["lag_max_seconds"]
    # The lag is the queued change to its confirmed write, as the rows record it (no stopwatch:
    # how long the run took depends on the machine).
    lags = [(r["processed_at"] - r["created_at"]).total_seconds() for r in queue_rows(db) if r["status"] == "done"]
    assert len(lags) == 3 and metadata["lag_max_seconds"] == round(max(lags), 3)
    assert str(mentors[0]) in metadata["changes"] and "| applied |" in metadata["changes"]
    assert {m for m, listed in sent_writes(emulator)} == {str(m) for m in mentors[:3]}


def test_asset_definition_carries_owners_kinds_and_group(test_defs):
    spec = test_defs.resolve_assets_def("website_listing").specs_by_key[dg.AssetKey("website_listing")]
    assert spec.group_name == "website_sync"
    assert spec.kinds == {"dynamics365", "postgres"}
    assert spec.owners and spec.description


def test_materialize_from_the_ui_drains_the_queue_and_nothing_else(db, emulator, resources):
    [changed, untouched] = hlf_mentors(db, 2)
    seed_contacts(emulator, [changed, untouched])
    set_statuses(db, [changed], "paused")

    result = dg.materialize([website_listing], resources=resources)

    assert result.success
    assert sent_writes(emulator) == [(str(changed), False)]  # the due change only, not every listing



def test_every_path_that_calls_dynamics_is_in_the_dynamics_pool():
    from mentor_pipeline.definitions import defs

    writers = {"website_listing", "website_reconciliation", "force_sync"}
    pools = {(job.name, node.name): node.definition.pool
             for job in defs.get_repository_def().get_all_jobs()
             for node in job.graph.node_dict.values() if node.name in writers}
    assert {name for _, name in pools} == writers
    assert set(pools.values()) == {"dynamics"}


def test_auth_failure_fails_the_run_and_alerts_once_not_again_as_run_failed(
    db, emulator, instance, resources, webhook, test_defs
):
    mentors = hlf_mentors(db, 2)
    seed_contacts(emulator, mentors)
    set_statuses(db, mentors, "paused")
    emulator.admin.rotate_secret("rotated-by-hlf-it")

    job = test_defs.resolve_job_def("website_sync_job")
    result = job.execute_in_process(instance=instance, raise_on_error=False)

    assert not result.success
    assert {(r["status"], r["attempts"]) for r in queue_rows(db)} == {("pending", 0)}
    assert webhook.kinds() == ["dynamics_auth_wrong_secret"]

    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert_sensor",
        dagster_event=result.get_run_failure_event(),
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        resources={"alerts": resources["alerts"]},
    ).for_run_failure()
    run_failure_alert_sensor(context)

    # The failed run is part of the sign-in incident, already posted: no run_failed on top.
    assert webhook.kinds() == ["dynamics_auth_wrong_secret"]
    assert get_incident(db, "run_failed", "website_sync_job") is None
    assert "rotated-by-hlf-it" not in str(webhook.posts) and emulator.options.client_secret not in str(webhook.posts)


def test_alerting_bounds_come_from_the_environment():
    from mentor_pipeline.resources import sync_settings_from_env

    assert sync_settings_from_env({}) == SyncSettings()
    settings = sync_settings_from_env({"MENTOR_PIPELINE_STALL_ALERT_MINUTES": "0.25",
                                       "MENTOR_PIPELINE_FRESHNESS_MINUTES": "30",
                                       "MENTOR_PIPELINE_CREDENTIAL_CHECK_MINUTES": "0.1"})
    assert (settings.stall_alert_minutes, settings.freshness_minutes, settings.credential_check_minutes) == (0.25, 30, 0.1)
    with pytest.raises(ValueError, match=r"^MENTOR_PIPELINE_FRESHNESS_MINUTES must be a positive number of minutes"):
        sync_settings_from_env({"MENTOR_PIPELINE_FRESHNESS_MINUTES": "fifteen"})
