"""The Dagster side: website_reconciliation per Oslo night (credential check first, reconcile,
asset checks), when the night's run starts (after that night's expiry, or by the 05:00 deadline
without it), and force_sync_job (by id, name or chapter; dry run). Real PostgreSQL, the emulator
over HTTP, a webhook receiver for alerts, a test instance."""

from __future__ import annotations

from datetime import datetime

import dagster as dg
import pytest

from mentor_pipeline.expiry.definitions import defs as expiry_defs
from mentor_pipeline.reconcile.assets import ForceSyncConfig
from mentor_pipeline.reconcile.definitions import defs as reconcile_defs
from mentor_pipeline.sync.definitions import defs as sync_defs
from mentor_pipeline.timezone import OSLO
from tests.reconcile.helpers import in_sync_world, writes_sent
from tests.support.factories import move_status_changes, queue_rows
from tests.sync.helpers import hlf_mentors, listed_in_dynamics, seed_contacts, sent_writes, set_statuses


@pytest.fixture
def instance():
    with dg.instance_for_test() as test_instance:
        yield test_instance


NIGHT = "2026-03-29"  # the night clocks go forward: 02:00 does not exist in Oslo
RECONCILIATION = dg.AssetKey("website_reconciliation")


@pytest.fixture
def test_defs(resources):
    shared = {k: v for k, v in resources.items() if k != "sync_settings"}
    return dg.Definitions.merge(sync_defs, expiry_defs, reconcile_defs, dg.Definitions(resources=shared))


def run_nightly(test_defs, instance, night: str = NIGHT, **kwargs):
    return test_defs.resolve_job_def("nightly_reconciliation_job").execute_in_process(
        instance=instance, raise_on_error=False, partition_key=night, **kwargs)


def run_expiry(test_defs, instance, night: str = NIGHT):
    result = test_defs.resolve_job_def("nightly_expiry_job").execute_in_process(instance=instance, partition_key=night)
    assert result.success


def at(hour: int, minute: int = 0, day: str = NIGHT) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, minute=minute, tzinfo=OSLO)


class Automation:
    """The daemon's view of website_reconciliation's automation condition, tick by tick."""

    def __init__(self, test_defs, instance):
        self.defs, self.instance, self.cursor = test_defs, instance, None

    def tick(self, when: datetime) -> set[str]:
        result = dg.evaluate_automation_conditions(
            defs=self.defs, instance=self.instance, asset_selection=dg.AssetSelection.assets(RECONCILIATION),
            evaluation_time=when, cursor=self.cursor)
        self.cursor = result.cursor
        return set(result.get_requested_partitions(RECONCILIATION))


def checks_of(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def metadata_of(result, node: str = "website_reconciliation") -> dict:
    [materialization] = result.asset_materializations_for_node(node)
    return {k: v.value for k, v in materialization.metadata.items()}


def run_force_sync(test_defs, instance, **config):
    return test_defs.resolve_job_def("force_sync_job").execute_in_process(
        instance=instance, raise_on_error=False,
        run_config=dg.RunConfig(ops={"force_sync": ForceSyncConfig(**config)}))


def force_sync_metadata(result) -> dict:
    [event] = [e for e in result.all_events if e.event_type_value in ("ASSET_MATERIALIZATION", "ASSET_OBSERVATION")]
    data = event.event_specific_data
    recorded = getattr(data, "materialization", None) or data.asset_observation
    assert recorded.asset_key == dg.AssetKey("website_listing")
    return {"event": event.event_type_value, **{k: v.value for k, v in recorded.metadata.items()}}


def test_nightly_job_reconciles_and_its_checks_pass(db, emulator, instance, test_defs, webhook):
    mentors = in_sync_world(db, emulator, 5)
    set_statuses(db, [mentors[0]], "paused")
    move_status_changes(db)  # the tick queues the removal, then it is lost
    db.execute("delete from sync_queue")

    result = run_nightly(test_defs, instance)

    assert result.success
    metadata = metadata_of(result)
    assert metadata["mode"] == "reconciliation" and metadata["listed_but_should_not"] == 1
    assert metadata["in_sync"] == 4 and metadata["applied"] == 1 and metadata["still_divergent"] == 0
    assert f"`{mentors[0]}`" in metadata["differences"] and "| listed_but_should_not | remove |" in metadata["differences"]
    assert "| in_sync | 4 |" in metadata["classification_counts"]
    assert metadata["ran_after_expiry"] is False and f"ran without night {NIGHT}'s expiry" in metadata["expiry"]
    # What the drift watch put right since the last night shows beside it (no look ran here).
    assert (metadata["drift_watch_found_24h"], metadata["drift_watch_fighting_24h"]) == (0, 0)
    checks = checks_of(result)
    assert set(checks) == {"dynamics_credentials", "divergence_after_resync", "no_stale_dead_sync_rows",
                           "no_duplicate_records"}
    assert all(c.passed for c in checks.values())
    assert checks["divergence_after_resync"].metadata["resynced"].value == 1
    assert db.execute("select dagster_run_id from reconciliation_runs").fetchone()[0] == result.run_id
    assert listed_in_dynamics(emulator)[str(mentors[0])] is False
    assert webhook.posts == []


def test_duplicates_raise_the_alert_and_fail_the_check(db, emulator, instance, test_defs, webhook):
    [mentor] = hlf_mentors(db, 1, cert_days=-1)  # certification lapsed yesterday
    seed_contacts(emulator, [mentor], listed=False)
    # expired, reinstated without a valid certification, expired again: two expired_cert
    # transitions for one certification period.
    for status in ("expired_cert", "active", "expired_cert"):
        set_statuses(db, [mentor], status)
    # A reminder table that lacks its unique constraint (an older deployment, a hand fix).
    db.execute("alter table cert_expiry_reminders drop constraint cert_expiry_reminders_once")
    db.execute("insert into cert_expiry_reminders (mentor_id, threshold_day, certification_expiry_date)"
               " values (%s, 7, '2026-12-01'), (%s, 7, '2026-12-01')", (mentor, mentor))

    result = run_nightly(test_defs, instance)

    assert result.success  # the website side is fine; the duplicates are for a person
    check = checks_of(result)["no_duplicate_records"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert check.metadata["duplicates"].value == 2
    assert "expired_cert_transition" in check.metadata["by_kind"].value
    assert "expiry_reminder" in check.metadata["by_kind"].value
    [alert] = [p for p in webhook.posts if p["kind"] == "reconciliation_duplicates"]
    assert "manual review" in alert["summary"]
    assert {d["kind"] for d in alert["details"]["duplicates"]} == {"expired_cert_transition", "expiry_reminder"}
    assert metadata_of(result)["duplicates"] == 2


def test_stale_dead_rows_fail_their_check_until_a_later_write_succeeds(db, emulator, instance, test_defs):
    [mentor] = in_sync_world(db, emulator, 1)
    db.execute("insert into sync_queue (mentor_id, operation, status, last_error, processed_at)"
               " values (%s, 'add', 'dead', 'gave up after 8 attempts', now() - interval '2 days')", (mentor,))

    first = checks_of(run_nightly(test_defs, instance))["no_stale_dead_sync_rows"]
    assert not first.passed and first.metadata["stale_dead_rows"].value == 1
    assert "gave up after 8 attempts" in first.metadata["rows"].value

    db.execute("insert into sync_queue (mentor_id, operation, status, processed_at) values (%s, 'add', 'done', now())",
               (mentor,))
    assert checks_of(run_nightly(test_defs, instance))["no_stale_dead_sync_rows"].passed


def test_credential_check_runs_first_and_alerts_at_once(db, emulator, instance, test_defs, webhook):
    in_sync_world(db, emulator, 2)
    emulator.admin.rotate_secret("rotated-by-hlf-it")
    emulator.admin.clear_requests()

    result = run_nightly(test_defs, instance)

    assert not result.success
    [check] = result.get_asset_check_evaluations()
    assert (check.check_name, check.passed) == ("dynamics_credentials", False)
    assert "DYNAMICS_CLIENT_SECRET" in check.description  # what to do, from the alert's advice
    assert "Nothing was reconciled" in result.get_step_failure_events()[0].step_failure_data.error.message
    assert result.asset_materializations_for_node("website_reconciliation") == []
    assert webhook.kinds() == ["dynamics_auth_wrong_secret"]
    assert emulator.admin.requests() == []  # no listing was read, nothing written
    assert db.execute("select count(*) from reconciliation_runs").fetchone()[0] == 0
    assert "rotated-by-hlf-it" not in str(webhook.posts)


def test_the_night_is_reconciled_as_soon_as_its_expiry_succeeded(db, emulator, instance, test_defs):
    in_sync_world(db, emulator, 2)
    automation = Automation(test_defs, instance)
    assert automation.tick(at(0, 30)) == set()  # tonight's expiry has not run

    run_expiry(test_defs, instance, "2026-03-27")  # a backfilled older night starts nothing
    assert automation.tick(at(1, 0)) == set()

    run_expiry(test_defs, instance)  # the schedule's 02:00 run, at 03:00 CEST on this night
    assert automation.tick(at(3, 1)) == {NIGHT}
    result = run_nightly(test_defs, instance)
    assert result.success
    metadata = metadata_of(result)
    assert metadata["ran_after_expiry"] is True and f"after night {NIGHT}'s expired_cert_transitions" in metadata["expiry"]

    # Reconciled: the deadline leaves the night alone.
    assert automation.tick(at(4, 59)) == set()
    assert automation.tick(at(5, 1)) == set()


def test_without_its_expiry_the_night_is_reconciled_by_the_deadline_and_says_so(db, emulator, instance, test_defs):
    in_sync_world(db, emulator, 2)
    automation = Automation(test_defs, instance)
    assert automation.tick(at(0, 30)) == set()
    # The expiry failed (or never ran): nothing before the deadline...
    assert automation.tick(at(3, 0)) == set()
    assert automation.tick(at(4, 59)) == set()
    # ... then the night's reconciliation, once.
    assert automation.tick(at(5, 1)) == {NIGHT}
    assert automation.tick(at(5, 2)) == set()

    result = run_nightly(test_defs, instance)
    assert result.success
    metadata = metadata_of(result)
    assert metadata["ran_after_expiry"] is False and f"ran without night {NIGHT}'s expiry" in metadata["expiry"]
    assert automation.tick(at(5, 10)) == set()
    # A late expiry (fixed and re-run by hand) is followed by the night's reconciliation again.
    run_expiry(test_defs, instance)
    assert automation.tick(at(9, 0)) == {NIGHT}


def test_force_sync_job_with_default_config_resyncs_every_hlf_mentor(db, emulator, instance, test_defs):
    hlf = hlf_mentors(db, 3)
    nhf = hlf_mentors(db, 1, org="NHF")
    seed_contacts(emulator, hlf, listed=False)

    result = run_force_sync(test_defs, instance)

    assert result.success
    rows = queue_rows(db)
    assert {r["mentor_id"] for r in rows} == set(hlf) and nhf[0] not in {r["mentor_id"] for r in rows}
    assert {(r["triggered_by_event"], r["status"]) for r in rows} == {("force_sync", "done")}
    assert listed_in_dynamics(emulator) == {str(m): True for m in hlf}
    metadata = force_sync_metadata(result)
    assert metadata["event"] == "ASSET_MATERIALIZATION" and metadata["mode"] == "force_sync" and metadata["queued"] == 3


def test_force_sync_by_name_and_by_chapter(db, emulator, instance, test_defs):
    [ingrid, other] = hlf_mentors(db, 2)
    db.execute("update mentors set full_name = 'Ingrid Hansen' where id = %s", (ingrid,))
    chapter_id = db.execute("insert into chapters (organization_id, name) select organization_id, 'Bergen'"
                            " from mentors where id = %s returning id", (other,)).fetchone()[0]
    db.execute("update mentors set chapter_id = %s where id = %s", (chapter_id, other))
    db.execute("delete from sync_queue")
    seed_contacts(emulator, [ingrid, other], listed=False)

    assert run_force_sync(test_defs, instance, mentor_names=["Ingrid Hansen"]).success
    assert sent_writes(emulator) == [(str(ingrid), True)]
    assert run_force_sync(test_defs, instance, chapter="Bergen").success
    assert sent_writes(emulator) == [(str(ingrid), True), (str(other), True)]
    assert emulator.admin.contact(str(other))["chapter"] == "Bergen"

    unknown = run_force_sync(test_defs, instance, mentor_names=["Nobody"], chapter="Atlantis")
    failure = unknown.get_step_failure_events()[0].step_failure_data.error.message
    assert "Nobody (no mentor with this exact name)" in failure and "chapter Atlantis" in failure
    assert len(sent_writes(emulator)) == 2


def test_force_sync_dry_run_lists_every_write_and_invalid_ids_fail(db, emulator, instance, test_defs):
    [mentor, in_sync] = hlf_mentors(db, 2)
    seed_contacts(emulator, [mentor], listed=False)
    seed_contacts(emulator, [in_sync], listed=True)
    db.execute("delete from sync_queue")
    emulator.admin.clear_requests()

    dry = run_force_sync(test_defs, instance, dry_run=True)
    assert dry.success
    metadata = force_sync_metadata(dry)
    assert metadata["event"] == "ASSET_OBSERVATION" and metadata["mode"] == "force_sync (dry run)"
    # Never contradicts itself: every write it counts is listed, in sync or not.
    assert metadata["would_write"] == 2 and metadata["missing_but_should"] == 1
    assert f"`{mentor}`" in metadata["writes"] and f"`{in_sync}`" in metadata["writes"]
    assert writes_sent(emulator) == [] and queue_rows(db) == []

    bad = run_force_sync(test_defs, instance, mentor_ids=[str(mentor), "nope"])
    assert not bad.success
    failure = bad.get_step_failure_events()[0].step_failure_data.error.message
    assert "nope (not a mentor id" in failure and "nothing was applied" in failure
    assert writes_sent(emulator) == [] and queue_rows(db) == []


def test_a_refused_sign_in_while_reading_is_alerted_as_its_cause(db, emulator, instance, test_defs, webhook):
    # Force sync checks no credentials first: the listing read is where the rotated secret shows.
    seed_contacts(emulator, hlf_mentors(db, 1), listed=False)
    emulator.admin.rotate_secret("rotated-by-hlf-it")

    result = run_force_sync(test_defs, instance, dry_run=True)

    assert not result.success
    assert "Dynamics authentication failed" in result.get_step_failure_events()[0].step_failure_data.error.message
    assert webhook.kinds() == ["dynamics_auth_wrong_secret"]
