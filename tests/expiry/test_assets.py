"""The Dagster side: assets over real Postgres, the credential check, config, job and schedule."""

from __future__ import annotations

from datetime import datetime, timedelta

import dagster as dg
import pytest

from mentor_pipeline.alerts import AlertSink
from mentor_pipeline.expiry.definitions import certification_state, defs, expiry_reminders, nightly_expiry_job, nightly_expiry_schedule
from mentor_pipeline.expiry.assets import run_config_for
from mentor_pipeline.resources import AppDatabase, dynamics_resource_for
from tests.expiry.helpers import OSLO, RUN_DATE, build_scenario, expiring_on, mentor_expiring, outcome, run_expiry_sql
from tests.support.emulator import running_emulator
from tests.support.webhook import webhook_receiver


@pytest.fixture(scope="module")
def emulator():
    with running_emulator() as emu:
        yield emu


def materialize(db_url, dynamics, alerts, run_date=RUN_DATE, raise_on_error=True):
    return dg.materialize(
        [certification_state, expiry_reminders],
        resources={"app_db": AppDatabase(url=db_url), "dynamics": dynamics, "alerts": alerts},
        run_config=run_config_for(run_date) if run_date else None,
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=raise_on_error,
    )


def metadata(result, asset_name):
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key.path == [asset_name]]
    return {key: value.value for key, value in event.materialization.metadata.items()}


def test_materialising_both_assets_equals_the_sql_run(db_url, db, emulator, admin_url, migrated_template):
    from tests.support.db import fresh_database
    import psycopg

    build_scenario(db)
    with webhook_receiver() as hook:
        result = materialize(db_url, dynamics_resource_for(emulator.settings()), AlertSink(database_url=db_url, webhook_url=hook.url))
    assert result.success
    assert hook.posts == []

    with fresh_database(admin_url, migrated_template) as url, psycopg.connect(url, autocommit=True) as twin:
        build_scenario(twin)
        run_expiry_sql(twin)
        assert outcome(db) == outcome(twin)

    state = metadata(result, "certification_state")
    assert state["run_date"] == "2026-06-15"
    assert state["dynamics_credentials_ok"] is True
    # Per organisation: 3 statuses x the scenario's days; "expired" includes mentors already expired_cert.
    assert state["mentors_no_certification"] == 6
    assert state["mentors_expired"] == 2 * 3 * 3  # -400, -30, -1 for every status
    assert state["mentors_lt_7_days"] == 2 * 3 * 4  # 0, 1, 5, 6
    assert state["mentors_transitioned_to_expired_cert"] == 6  # active HLF and NHF with -400, -30, -1
    assert state["transitioned_by_organization"] == {"HLF": 3, "NHF": 3}
    assert state["active_without_certification"] == 2
    assert "| HLF |" in state["mentors_by_organization_and_bucket"]

    reminders = metadata(result, "expiry_reminders")
    assert reminders["reminders_created"] == reminders["notifications_created"] == len(outcome(db)["reminders"])
    # 0..7 days -> 7 (5 values), 8..14 -> 14 (3), 15..30 -> 30 (3); x 2 organisations x 3 statuses.
    assert reminders["reminders_by_threshold"] == {"30": 18, "14": 18, "7": 30}

    again = materialize(db_url, dynamics_resource_for(emulator.settings()), AlertSink(database_url=db_url))
    assert metadata(again, "expiry_reminders")["reminders_created"] == 0
    assert metadata(again, "certification_state")["mentors_transitioned_to_expired_cert"] == 0


@pytest.mark.parametrize(("secret", "kind"), [("not-the-secret", "dynamics_auth_wrong_secret")])
def test_a_dynamics_auth_failure_alerts_at_once_but_reminders_and_transitions_still_happen(db_url, db, emulator, secret, kind):
    lapsed = mentor_expiring(db, expiring_on(RUN_DATE, -1))
    expiring = mentor_expiring(db, expiring_on(RUN_DATE, 3))
    with webhook_receiver() as hook:
        result = materialize(db_url, dynamics_resource_for(emulator.settings(client_secret=secret)),
                             AlertSink(database_url=db_url, webhook_url=hook.url))
    assert result.success
    assert hook.kinds() == [kind]
    assert secret not in str(hook.posts)
    assert metadata(result, "certification_state")["dynamics_credentials_ok"] is False
    assert db.execute("select status from mentors where id = %s", (lapsed,)).fetchone() == ("expired_cert",)
    assert db.execute("select count(*) from coordinator_notifications where mentor_id = %s", (expiring,)).fetchone() == (1,)


def test_an_unreachable_dynamics_alerts_and_the_run_goes_on(db_url, db):
    from mentor_pipeline.dynamics import DynamicsSettings

    mentor_expiring(db, expiring_on(RUN_DATE, 3))
    unreachable = DynamicsSettings(url="http://127.0.0.1:9", authority="http://127.0.0.1:9", tenant_id="t",
                                   client_id="c", client_secret="s")
    with webhook_receiver() as hook:
        result = materialize(db_url, dynamics_resource_for(unreachable, timeout_seconds=1.0), AlertSink(database_url=db_url, webhook_url=hook.url))
    assert result.success
    assert len(hook.posts) == 1
    assert metadata(result, "expiry_reminders")["reminders_created"] == 1


@pytest.mark.parametrize("bad", ["2026-13-01", "15.06.2026", "2026-6-1", "tomorrow"])
def test_a_bad_run_date_fails_with_one_clear_line_and_changes_nothing(db_url, db, emulator, bad):
    mentor_expiring(db, expiring_on(RUN_DATE, -1))
    config = {"config": {"run_date": bad}}
    result = dg.materialize(
        [certification_state, expiry_reminders],
        resources={"app_db": AppDatabase(url=db_url), "dynamics": dynamics_resource_for(emulator.settings()),
                   "alerts": AlertSink(database_url=db_url)},
        run_config={"ops": {"certification_state": config, "expiry_reminders": config}},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert f"invalid run date '{bad}': expected a calendar date as YYYY-MM-DD" in failure.step_failure_data.error.message
    assert db.execute("select count(*) from mentors where status = 'expired_cert'").fetchone() == (0,)
    assert db.execute("select count(*) from certification_state").fetchone() == (0,)


def test_without_a_run_date_the_run_uses_todays_oslo_date(db_url, db, emulator):
    today = datetime.now(OSLO).date()
    mentor_id = mentor_expiring(db, expiring_on(today, 10))
    result = materialize(db_url, dynamics_resource_for(emulator.settings()), AlertSink(database_url=db_url), run_date=None)
    assert metadata(result, "certification_state")["run_date"] == today.isoformat()
    assert db.execute("select threshold_day, run_date from cert_expiry_reminders where mentor_id = %s",
                      (mentor_id,)).fetchall() == [(14, today)]


def test_schedule_runs_the_job_nightly_at_two_oslo_time_for_that_oslo_date():
    assert nightly_expiry_schedule.cron_schedule == "0 2 * * *"
    assert nightly_expiry_schedule.execution_timezone == "Europe/Oslo"
    assert nightly_expiry_schedule.job_name == "nightly_expiry_job"

    # 02:00 Oslo on 26 October (winter time) is 01:00 UTC the same day; on 15 June it is 00:00 UTC.
    for scheduled in [datetime(2026, 10, 26, 2, tzinfo=OSLO), datetime(2026, 6, 15, 2, tzinfo=OSLO)]:
        context = dg.build_schedule_context(scheduled_execution_time=scheduled)
        request = nightly_expiry_schedule.evaluate_tick(context).run_requests[0]
        expected = scheduled.date().isoformat()
        assert request.run_key == f"nightly_expiry:{expected}"
        assert request.run_config == run_config_for(scheduled.date())
        assert request.run_config["ops"]["certification_state"]["config"]["run_date"] == expected


def test_definitions_describe_the_assets():
    repo = dg.Definitions.merge(
        defs, dg.Definitions(resources={"app_db": AppDatabase(), "dynamics": dynamics_resource_for(
            __import__("mentor_pipeline.dynamics", fromlist=["DynamicsSettings"]).DynamicsSettings(
                url="http://x", authority="http://x", tenant_id="t", client_id="c", client_secret="s")),
            "alerts": AlertSink()})
    ).get_repository_def()
    job = repo.get_job("nightly_expiry_job")
    assert {node.name for node in job.nodes} == {"certification_state", "expiry_reminders"}
    graph = repo.asset_graph
    for name in ["certification_state", "expiry_reminders"]:
        spec = graph.get(dg.AssetKey(name))
        assert spec.group_name == "certification_expiry"
        assert spec.owners and spec.description
        assert "postgres" in spec.kinds
    assert graph.get(dg.AssetKey("expiry_reminders")).parent_keys == {dg.AssetKey("certification_state")}


def test_the_code_location_carries_the_job_and_schedule():
    from mentor_pipeline.definitions import defs as location

    repo = location.get_repository_def()
    assert {node.name for node in repo.get_job("nightly_expiry_job").nodes} == {"certification_state", "expiry_reminders"}
    schedule = repo.get_schedule_def("nightly_expiry_schedule")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 2 * * *", "Europe/Oslo")
