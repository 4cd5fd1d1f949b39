"""The Dagster side: one Oslo night per partition, three assets over real Postgres, the job and
the schedule (including the spring-forward night, when 02:00 does not exist in Oslo)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import dagster as dg
import psycopg
import pytest

from mentor_pipeline.expiry.assets import certification_state, expired_cert_transitions, expiry_reminders
from mentor_pipeline.expiry.dates import today_in_oslo
from mentor_pipeline.expiry.definitions import defs
from mentor_pipeline.expiry.schedules import nightly_expiry_schedule
from mentor_pipeline.nights import NIGHTS
from mentor_pipeline.operations.alerts import AlertSink
from mentor_pipeline.resources import AppDatabase
from mentor_pipeline.timezone import OSLO
from tests.expiry.helpers import build_scenario, expiring_on, mentor_expiring, outcome, run_expiry_sql
from tests.support.db import fresh_database
from tests.support.webhook import webhook_receiver

NIGHT = [expired_cert_transitions, certification_state, expiry_reminders]
# Last night: a past night (the partition key, not the day the test runs), recent enough that
# its reminders, sent today, are still due for certifications valid today.
LAST_NIGHT = today_in_oslo() - timedelta(days=1)


def materialize(db_url, night: date = LAST_NIGHT, raise_on_error=True, alerts: AlertSink | None = None):
    # The app database and the alerts: nothing in the nightly expiry talks to Dynamics.
    return dg.materialize(NIGHT, partition_key=night.isoformat(),
                          resources={"app_db": AppDatabase(url=db_url), "alerts": alerts or AlertSink()},
                          instance=dg.DagsterInstance.ephemeral(), raise_on_error=raise_on_error)


def metadata(result, asset_name):
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key.path == [asset_name]]
    return {key: value.value for key, value in event.materialization.metadata.items()}


def test_materialising_a_night_equals_the_sql_run_and_again_adds_nothing(db_url, db, admin_url, migrated_template):
    build_scenario(db, LAST_NIGHT)
    result = materialize(db_url)
    assert result.success

    with fresh_database(admin_url, migrated_template) as url, psycopg.connect(url, autocommit=True) as twin:
        build_scenario(twin, LAST_NIGHT)
        run_expiry_sql(twin, LAST_NIGHT, on_time=False)  # reminders sent today, as the asset does
        assert outcome(db) == outcome(twin)
    # The run date is the partition key (a past night), not the day the test runs.
    assert {row[-1] for row in outcome(db)["reminders"]} == {LAST_NIGHT}
    assert {row[-1] for row in outcome(db)["certification_state"]} == {LAST_NIGHT}

    moved = metadata(result, "expired_cert_transitions")
    assert moved["mentors_transitioned_to_expired_cert"] == 6  # active HLF and NHF with -400, -30, -1
    assert moved["transitioned_by_organization"] == {"HLF": 3, "NHF": 3}
    assert len(moved["transitioned_mentor_ids_sample"]) == 6

    state = metadata(result, "certification_state")
    # Per organisation: 3 statuses x the scenario's days; "expired" includes mentors already expired_cert.
    assert state["mentors_no_certification"] == 6
    assert state["mentors_expired"] == 2 * 3 * 3  # -400, -30, -1 for every status
    assert state["mentors_lt_7_days"] == 2 * 3 * 4  # 0, 1, 5, 6
    assert state["active_without_certification"] == 2
    assert "| HLF |" in state["mentors_by_organization_and_bucket"]

    reminders = metadata(result, "expiry_reminders")
    assert reminders["reminders_created"] == reminders["notifications_created"] == len(outcome(db)["reminders"])
    # 1..7 days -> 7 (4 values; the one expiring that night has lapsed by today, when reminders
    # are sent), 8..14 -> 14 (3), 15..30 -> 30 (3); x 2 organisations x 3 statuses.
    assert reminders["reminders_by_threshold"] == {"30": 18, "14": 18, "7": 24}

    again = materialize(db_url)
    assert metadata(again, "expiry_reminders")["reminders_created"] == 0
    assert metadata(again, "expired_cert_transitions")["mentors_transitioned_to_expired_cert"] == 0


def test_each_step_has_its_own_status_and_rerunning_the_night_finishes_it(db_url, db):
    lapsed = mentor_expiring(db, expiring_on(LAST_NIGHT, -1))
    expiring = mentor_expiring(db, expiring_on(LAST_NIGHT, 3))
    db.execute("alter table cert_expiry_reminders rename to cert_expiry_reminders_away")

    broken = materialize(db_url, raise_on_error=False)
    assert not broken.success
    assert {e.asset_key.path[0] for e in broken.get_asset_materialization_events()} == {
        "expired_cert_transitions", "certification_state"}
    [failure] = broken.get_step_failure_events()
    assert failure.step_key == "expiry_reminders"
    assert db.execute("select status from mentors where id = %s", (lapsed,)).fetchone() == ("expired_cert",)

    db.execute("alter table cert_expiry_reminders_away rename to cert_expiry_reminders")
    fixed = materialize(db_url)
    assert metadata(fixed, "expired_cert_transitions")["mentors_transitioned_to_expired_cert"] == 0
    assert metadata(fixed, "expiry_reminders")["reminders_created"] == 1
    assert db.execute("select threshold_day, run_date from cert_expiry_reminders where mentor_id = %s",
                      (expiring,)).fetchall() == [(7, LAST_NIGHT)]


@pytest.mark.parametrize("night", ["tomorrow", "2026-13-01", "2025-12-31"])
def test_a_night_that_is_not_a_partition_is_refused_before_anything_runs(db_url, db, night):
    if night == "tomorrow":
        night = (datetime.now(OSLO).date() + timedelta(days=1)).isoformat()
    mentor_expiring(db, expiring_on(LAST_NIGHT, -1))
    with pytest.raises(dg.DagsterUnknownPartitionError, match=night):
        dg.materialize(NIGHT, partition_key=night, resources={"app_db": AppDatabase(url=db_url), "alerts": AlertSink()},
                       instance=dg.DagsterInstance.ephemeral())
    assert db.execute("select count(*) from mentors where status = 'expired_cert'").fetchone() == (0,)


def test_tonight_is_a_partition_from_midnight_oslo_time():
    today = datetime.now(OSLO).date()
    assert NIGHTS.get_last_partition_key() == today.isoformat()
    assert NIGHTS.timezone == "Europe/Oslo"


@pytest.fixture(scope="module")
def repo():
    return dg.Definitions.merge(defs, dg.Definitions(resources={"app_db": AppDatabase(), "alerts": AlertSink()})
                                ).get_repository_def()


def schedule_request(repo, scheduled: datetime) -> dg.RunRequest:
    context = dg.build_schedule_context(scheduled_execution_time=scheduled, repository_def=repo)
    [request] = nightly_expiry_schedule.evaluate_tick(context).run_requests
    return request


@pytest.mark.parametrize(("tick", "night"), [
    (datetime(2026, 6, 15, 2, tzinfo=OSLO), "2026-06-15"),  # summer time: 00:00 UTC
    (datetime(2026, 10, 26, 2, tzinfo=OSLO), "2026-10-26"),  # winter time: 01:00 UTC
    # Spring forward: 02:00 does not exist on 29 March; Dagster fires at the next existing
    # time, 03:00 CEST (= 01:00 UTC), and that is still the night of the 29th.
    (datetime(2026, 3, 29, 3, tzinfo=OSLO), "2026-03-29"),
    # Fall back: 02:00 happens twice on 25 October; Dagster fires once, at the second.
    (datetime(2026, 10, 25, 2, fold=1, tzinfo=OSLO), "2026-10-25"),
])
def test_the_schedule_requests_the_partition_of_the_oslo_night_it_fires_in(repo, tick, night):
    assert (nightly_expiry_schedule.cron_schedule, nightly_expiry_schedule.execution_timezone) == ("0 2 * * *", "Europe/Oslo")
    request = schedule_request(repo, tick)
    assert request.partition_key == night
    assert request.tags["dagster/partition"] == night
    assert request.run_key == f"nightly_expiry:{night}"


def test_the_short_and_the_long_night_are_each_one_partition():
    def hours(key: str) -> float:
        window = NIGHTS.time_window_for_partition_key(key)
        return (window.end.timestamp() - window.start.timestamp()) / 3600

    assert (hours("2026-03-28"), hours("2026-03-29"), hours("2026-03-30")) == (24, 23, 24)
    assert hours("2026-10-25") == 25
    keys = NIGHTS.get_partition_keys_in_range(dg.PartitionKeyRange("2026-03-28", "2026-03-30"))
    assert keys == ["2026-03-28", "2026-03-29", "2026-03-30"]


def test_definitions_describe_the_assets(repo):
    job = repo.get_job("nightly_expiry_job")
    assert {node.name for node in job.nodes} == {"expired_cert_transitions", "certification_state", "expiry_reminders"}
    assert job.partitions_def == NIGHTS
    graph = repo.asset_graph
    for name in ["expired_cert_transitions", "certification_state", "expiry_reminders"]:
        spec = graph.get(dg.AssetKey(name))
        assert spec.group_name == "certification_expiry"
        assert spec.owners and spec.description
        assert "postgres" in spec.kinds
        assert spec.partitions_def == NIGHTS
    assert graph.get(dg.AssetKey("certification_state")).parent_keys == {dg.AssetKey("expired_cert_transitions")}
    assert graph.get(dg.AssetKey("expiry_reminders")).parent_keys == {dg.AssetKey("certification_state")}


def test_the_code_location_carries_the_job_and_schedule():
    from mentor_pipeline.definitions import defs as location

    repo = location.get_repository_def()
    assert {node.name for node in repo.get_job("nightly_expiry_job").nodes} == {
        "expired_cert_transitions", "certification_state", "expiry_reminders"}
    schedule = repo.get_schedule_def("nightly_expiry_schedule")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 2 * * *", "Europe/Oslo")


def test_names_are_escaped_in_markdown_metadata_and_the_cli(db, capsys):
    from mentor_pipeline.cli import main
    from mentor_pipeline.expiry.assets import certification_state_metadata
    from mentor_pipeline.expiry.run import snapshot_certification_state

    evil = "Eve\n| forged | row |\x1b[31m*x*"
    mentor_expiring(db, None, name=evil)  # active without a certification: listed by name
    mentor_expiring(db, None, name="Kari Nordmann")
    table = certification_state_metadata(snapshot_certification_state(db, LAST_NIGHT))[
        "active_without_certification_list"].value
    rows = table.splitlines()
    assert len(rows) == 4  # header, rule, one row per mentor
    assert "\x1b" not in table
    [evil_row] = [row for row in rows if row.startswith("| Eve")]
    assert evil_row.startswith("| Eve \\| forged \\| row \\| \\[31m*x* | HLF |")  # mentor_pipeline.markdown

    assert main(["expiry", "--date", LAST_NIGHT.isoformat()]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "    - Eve\\n| forged | row |\\x1b[31m*x* (HLF, HLF Oslo)" in out


def test_invalid_thresholds_of_one_organisation_alert_and_the_others_get_their_reminders(db_url, db):
    from mentor_pipeline.operations.store import get_incident
    from tests.expiry.helpers import plant_thresholds, reminders_of

    hlf = mentor_expiring(db, expiring_on(LAST_NIGHT, 3))
    nhf = mentor_expiring(db, expiring_on(LAST_NIGHT, 3), org="NHF")
    plant_thresholds(db, "NHF", "{30,7.5}")
    with webhook_receiver() as hook:
        result = materialize(db_url, alerts=AlertSink(webhook_url=hook.url))
    assert result.success
    assert hook.kinds() == ["expiry_thresholds_invalid"]
    [post] = hook.posts
    assert post["summary"].startswith("no expiry reminders for NHF: its thresholds are invalid"
                                      " (thresholds are whole days, got 7.5)")
    assert metadata(result, "expiry_reminders")["organizations_skipped_invalid_thresholds"] == {
        "NHF": "thresholds are whole days, got 7.5"}
    assert reminders_of(db, hlf) and reminders_of(db, nhf) == []
    assert get_incident(db, "expiry_thresholds_invalid", "NHF").state == "open"

    # Fixed: the next run reminds NHF too and resolves the incident.
    db.execute("update expiry_threshold_config set threshold_days = '{30,7}'")
    with webhook_receiver() as hook:
        again = materialize(db_url, alerts=AlertSink(webhook_url=hook.url))
    assert again.success
    assert [(p["incident"], p["state"]) for p in hook.posts] == [("expiry_thresholds_invalid:NHF", "resolved")]
    assert reminders_of(db, nhf) == [(7, LAST_NIGHT + timedelta(days=3))]
    assert metadata(again, "expiry_reminders")["organizations_skipped_invalid_thresholds"] == {}
