"""The freshness promise: no due change waits longer than N minutes. The asset check on
website_listing, evaluated without a run by website_sync_health_sensor; a breach is the incident
website_stale. Real PostgreSQL, an ephemeral Dagster instance, a real webhook receiver."""

from __future__ import annotations

import json
from datetime import timedelta

import dagster as dg
import pytest

from mentor_pipeline.definitions import defs
from mentor_pipeline.resources import AppDatabase, SyncSettings
from mentor_pipeline.sync import Drain
from mentor_pipeline.sync.assets import website_listing
from mentor_pipeline.sync.checks import FRESHNESS_CHECK
from mentor_pipeline.sync.definitions import defs as sync_defs
from mentor_pipeline.sync.health import check_freshness, freshness
from mentor_pipeline.sync.sensors import website_sync_health_sensor
from tests.support.factories import move_status_changes
from tests.sync.helpers import FAST, db_now, hlf_mentors, seed_contacts, set_statuses

LIMIT = timedelta(minutes=15)


@pytest.fixture
def instance():
    with dg.instance_for_test() as test_instance:
        yield test_instance


def tick(instance, db_url, alerts, cursor=None):
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor,
        resources={"app_db": AppDatabase(url=db_url), "alerts": alerts, "sync_settings": SyncSettings()})
    return website_sync_health_sensor(context)


def test_the_oldest_waiting_change_sets_the_age_and_the_limit_the_verdict(db):
    mentors = hlf_mentors(db, 3)
    set_statuses(db, mentors[:2], "paused")
    move_status_changes(db)  # the tick after the app's change: queued before `now`
    now = db_now(db)

    fresh = freshness(db, LIMIT, now)
    assert fresh.passed and fresh.waiting == 2 and fresh.late == 0
    assert fresh.oldest_age < timedelta(minutes=1)

    later = freshness(db, LIMIT, now + timedelta(minutes=16))
    assert not later.passed and later.late == 2
    assert timedelta(minutes=16) <= later.oldest_age < timedelta(minutes=17)
    assert "2 change(s) have waited longer than 15 min" in later.summary()


def test_a_breach_opens_website_stale_once_and_a_write_resolves_it(db, connect, client, emulator, alerts, webhook):
    mentors = hlf_mentors(db, 2)
    seed_contacts(emulator, mentors)
    set_statuses(db, mentors, "paused")
    later = db_now(db) + timedelta(minutes=20)

    assert not check_freshness(db, alerts, LIMIT, later).passed
    assert not check_freshness(db, alerts, LIMIT, later + timedelta(minutes=1)).passed
    assert [(p["kind"], p["state"]) for p in webhook.posts] == [("website_stale", "open")]
    assert webhook.posts[0]["details"]["late_changes"] == 2

    Drain(connect, client, policy=FAST).run()
    assert check_freshness(db, alerts, LIMIT, later).passed
    assert [p["state"] for p in webhook.posts] == ["open", "resolved"]


def test_dead_and_done_rows_are_not_waiting(db, connect, client, emulator):
    present, missing = hlf_mentors(db, 2)
    seed_contacts(emulator, [present])
    set_statuses(db, [present, missing], "paused")
    Drain(connect, client, policy=FAST).run()  # one done, one dead (no contact)
    result = freshness(db, LIMIT, db_now(db) + timedelta(hours=1))
    assert result.passed and result.waiting == 0 and result.oldest_age == timedelta(0)


def test_the_sensor_reports_the_check_without_a_run_and_the_instance_records_it(db, db_url, instance, alerts, webhook):
    [mentor] = hlf_mentors(db, 1)
    set_statuses(db, [mentor], "paused")
    move_status_changes(db)  # the tick after the app's change
    db.execute("update sync_queue set created_at = created_at - interval '20 minutes'")

    result = tick(instance, db_url, alerts)
    [event] = result.asset_events
    assert isinstance(event, dg.AssetCheckEvaluation)
    assert (event.asset_key, event.check_name, event.passed) == (website_listing.key, FRESHNESS_CHECK, False)
    age = event.metadata["oldest_due_change_minutes"]
    assert isinstance(age, dg.FloatMetadataValue) and 20 <= age.value < 21
    assert event.metadata["late_changes"].value == 1
    assert [(p["kind"], p["state"]) for p in webhook.posts] == [("website_stale", "open")]

    # What the daemon does with it: a runless evaluation of the check defined on website_listing.
    instance.report_runless_asset_event(event)
    check_key = dg.AssetCheckKey(website_listing.key, FRESHNESS_CHECK)
    assert check_key in defs.get_repository_def().asset_checks_defs_by_key  # the code location's check
    [record] = instance.event_log_storage.get_asset_check_execution_history(check_key, limit=5)
    evaluation = record.event.dagster_event.event_specific_data
    assert evaluation.passed is False and evaluation.metadata["oldest_due_change_minutes"].value == age.value


def test_the_sensor_reports_every_minute_while_changes_wait_and_every_ten_when_idle(db, db_url, instance, alerts):
    first = tick(instance, db_url, alerts)
    assert first.asset_events[0].passed and first.asset_events[0].metadata["waiting_changes"].value == 0
    idle = tick(instance, db_url, alerts, cursor=first.cursor)
    assert isinstance(idle, dg.SkipReason), "nothing waits, nothing changed: no new point"

    [mentor] = hlf_mentors(db, 1)
    set_statuses(db, [mentor], "paused")
    busy = tick(instance, db_url, alerts, cursor=first.cursor)
    assert busy.asset_events[0].passed and busy.asset_events[0].metadata["waiting_changes"].value == 1

    stale_cursor = json.dumps({**json.loads(first.cursor), "reported_at": json.loads(first.cursor)["reported_at"] - 601})
    db.execute("delete from sync_queue")
    assert tick(instance, db_url, alerts, cursor=stale_cursor).asset_events, "ten minutes on: a point anyway"


def test_the_sensor_opens_dynamics_unreachable_between_runs(db, db_url, connect, client, emulator, instance, alerts,
                                                            webhook):
    mentors = hlf_mentors(db, 1)
    seed_contacts(emulator, mentors)
    set_statuses(db, mentors, "paused")
    emulator.admin.set_faults(error_rate=1.0)
    Drain(connect, client, policy=FAST, alerts=alerts).run()
    tick(instance, db_url, alerts)
    assert "dynamics_unreachable" not in webhook.kinds()

    db.execute("update sync_queue set created_at = created_at - interval '6 minutes'")  # the backoff goes on
    tick(instance, db_url, alerts)
    assert [(p["kind"], p["state"]) for p in webhook.posts if p["kind"] == "dynamics_unreachable"] == [
        ("dynamics_unreachable", "open")]


def test_the_check_runs_from_the_ui_too(db, db_url, emulator, alerts, webhook):
    from tests.support.stack import stack_resources

    resources = stack_resources(db_url, emulator, alerts, linger_seconds=0)
    result = dg.materialize([website_listing, *sync_defs.asset_checks], resources=resources,
                            instance=dg.DagsterInstance.ephemeral())
    [check] = result.get_asset_check_evaluations()
    assert check.check_name == FRESHNESS_CHECK and check.passed
