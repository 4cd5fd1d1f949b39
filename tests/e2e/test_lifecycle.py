"""The integration checkpoint: mentors' whole lifecycle through the running pipeline.

Every change is made in the database the way the app makes it (an UPDATE of mentors.status, an
INSERT of a certification); the outbox trigger, the daemon's sensor, the sync run and the
emulator do the rest. Assertions read the emulator (contact state, request log, public page),
Dagster's GraphQL API, the webhook receiver and the app's tables.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import date, datetime, timedelta, timezone
from datetime import time as dtime

import pytest

from mentor_pipeline.expiry.dates import OSLO, today_in_oslo
from mentor_pipeline.expiry.run import run_nightly_expiry as nightly_expiry_once
from tests.e2e.harness import Stack, wait_for
from tests.support import factories

pytestmark = [
    pytest.mark.e2e,
    # gql (under DagsterGraphQLClient) warns about its own call style; not ours, not Dagster's.
    pytest.mark.filterwarnings("ignore:Using variable_values and operation_name:DeprecationWarning"),
]

# Status change -> confirmed Dynamics write. On a loaded 2-core box that can be a sensor tick, a run
# launch (20-40 s), a failed attempt's retry backoff (30 s, then 60 s) and a second launch: about
# 150 s; observed 3-10 s on a quiet one. Only a deadline: every wait returns as soon as it holds.
SYNC_TIMEOUT = 300.0


# -- helpers ------------------------------------------------------------------------------------


def new_mentor(stack: Stack, org: str, name: str, *, cert_expires_at: datetime | None = None,
               listed_in_dynamics: bool | None = None, settled: bool = False) -> uuid.UUID:
    """A mentor as the app creates one; for HLF, the contact HLF's Dynamics already holds.
    `settled`: the certification was in the app long before the test, so its insert is no change
    for the website (the write it marked goes in the same transaction, before any drain sees it)."""
    with stack.connect() as conn, conn.transaction():
        mentor_id = factories.mentor(conn, org, full_name=name, cert_expires_in=None)
        expires_at = cert_expires_at or datetime.now(timezone.utc) + timedelta(days=365)
        conn.execute(
            "insert into certifications (mentor_id, issued_at, expires_at) values (%s, %s, %s)",
            (mentor_id, expires_at - timedelta(days=730), expires_at),
        )
        if settled:
            conn.execute("delete from sync_queue where mentor_id = %s and status = 'pending'"
                         " and triggered_by_event = 'certification_change'", (mentor_id,))
        chapter = conn.execute(
            "select c.name from mentors m join chapters c on c.id = m.chapter_id where m.id = %s", (mentor_id,)
        ).fetchone()[0]
    if listed_in_dynamics is not None:
        stack.admin.seed_contacts([{"mentor_id": str(mentor_id), "full_name": name, "chapter": chapter,
                                    "listed": listed_in_dynamics}])
    return mentor_id


def set_status(stack: Stack, mentor_id: uuid.UUID, status: str) -> None:
    with stack.connect() as conn:
        conn.execute("update mentors set status = %s, updated_at = now() where id = %s", (status, mentor_id))


def renew_certification(stack: Stack, mentor_id: uuid.UUID, days: int = 365) -> None:
    now = datetime.now(timezone.utc)
    with stack.connect() as conn:
        conn.execute("insert into certifications (mentor_id, issued_at, expires_at) values (%s, %s, %s)",
                     (mentor_id, now, now + timedelta(days=days)))


def listed(stack: Stack, mentor_id: uuid.UUID) -> bool | None:
    contact = stack.admin.contact(str(mentor_id))
    return None if contact is None else contact["listed"]


def wait_listed(stack: Stack, mentor_id: uuid.UUID, expected: bool, what: str) -> None:
    wait_for(lambda: listed(stack, mentor_id) is expected, timeout=SYNC_TIMEOUT,
             what=f"{what}: hlf_websitelisted={expected} in Dynamics")


def on_public_page(stack: Stack, mentor_id: uuid.UUID) -> bool:
    return any(m["mentor_id"] == str(mentor_id) for mentors in stack.admin.portal().values() for m in mentors)


def queue(stack: Stack, mentor_id: uuid.UUID) -> list[dict]:
    with stack.connect() as conn:
        return factories.queue_rows(conn, mentor_id)


def writes_for(stack: Stack, mentor_id: uuid.UUID) -> list[dict]:
    """Every Web API request that named this mentor (single requests and $batch parts)."""
    return [e for e in stack.admin.requests() if str(mentor_id) in (e.get("path") or "") + (e.get("query") or "")]


def listed_values_written(stack: Stack, mentor_id: uuid.UUID) -> list[bool]:
    return [e["body"]["hlf_websitelisted"] for e in writes_for(stack, mentor_id)
            if e["method"] == "PATCH" and isinstance(e.get("body"), dict) and e.get("status") in (200, 204)]


def reminders(stack: Stack, mentor_id: uuid.UUID) -> dict[int, int]:
    with stack.connect() as conn:
        rows = conn.execute(
            "select threshold_day, count(*) from cert_expiry_reminders where mentor_id = %s group by threshold_day",
            (mentor_id,),
        ).fetchall()
    return dict(rows)


def notifications(stack: Stack, mentor_id: uuid.UUID) -> dict[int, int]:
    with stack.connect() as conn:
        rows = conn.execute(
            "select threshold_day, count(*) from coordinator_notifications where mentor_id = %s group by threshold_day",
            (mentor_id,),
        ).fetchall()
    return dict(rows)


def status_of(stack: Stack, mentor_id: uuid.UUID) -> str:
    with stack.connect() as conn:
        return conn.execute("select status from mentors where id = %s", (mentor_id,)).fetchone()[0]


def night_tags(night: date) -> dict[str, str]:
    """What the UI's launchpad (or the schedule) sets to run one night's partition."""
    return {"dagster/partition": night.isoformat()}


def run_nightly_expiry(stack: Stack, run_date: date) -> str:
    """Launch nightly_expiry_job for the night `run_date` through the webserver, as the schedule would."""
    run_id = stack.submit_job("nightly_expiry_job", tags=night_tags(run_date))
    status = stack.wait_for_run(run_id)
    assert status == "SUCCESS", f"nightly_expiry_job for {run_date} ended {status}: {stack.run_failure_message(run_id)}"
    return run_id


def automation_has_ticked(stack: Stack, sensor: str) -> bool:
    """Declarative automation reacts to changes after its first tick, not to those before it."""
    data = stack.graphql(
        "query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) { ... on Sensor {"
        " sensorState { ticks(limit: 1) { status } } } } }",
        {"s": stack.sensor_selector(sensor)},
    )
    return bool(data["sensorOrError"]["sensorState"]["ticks"])


def runs_tagged(stack: Stack, tags: dict[str, str]) -> list[dict]:
    data = stack.graphql(
        "query($filter: RunsFilter) { runsOrError(filter: $filter) { ... on Runs { results { runId status jobName } } } }",
        {"filter": {"tags": [{"key": k, "value": v} for k, v in tags.items()]}},
    )
    return data["runsOrError"]["results"]


def assert_sync_run_started_by_sensor(stack: Stack) -> None:
    """The newest website_sync_job run came from the sensor and has not failed. (It may still be
    lingering for more changes; test_suite_end checks every finished run's outcome.)"""
    [latest] = wait_for(lambda: stack.runs("website_sync_job", limit=1), timeout=10,
                        what="a website_sync_job run started by the sensor")
    assert any(t["key"] == "dagster/sensor_name" and t["value"] == "sync_queue_sensor" for t in latest["tags"])
    assert latest["status"] not in ("FAILURE", "CANCELED"), stack.run_failure_message(latest["runId"])


# -- the lifecycle --------------------------------------------------------------------------------


def test_pause_removes_from_website_and_reinstatement_restores(stack: Stack):
    hlf = new_mentor(stack, "HLF", "E2E Astrid Pause", listed_in_dynamics=True, settled=True)
    nhf = new_mentor(stack, "NHF", "E2E Nils Pause")
    assert on_public_page(stack, hlf)

    set_status(stack, hlf, "paused")
    set_status(stack, nhf, "paused")
    wait_listed(stack, hlf, False, "paused HLF mentor removed")
    wait_for(lambda: not on_public_page(stack, hlf), timeout=10, what="the mentor to leave the public page")
    wait_for(lambda: queue(stack, hlf)[-1]["status"] == "done", timeout=SYNC_TIMEOUT, what="the remove row done")
    [row] = queue(stack, hlf)
    assert (row["operation"], row["triggered_by_event"], row["attempts"]) == ("remove", "status_change", 0)
    assert listed_values_written(stack, hlf) == [False]
    assert_sync_run_started_by_sensor(stack)

    set_status(stack, hlf, "active")
    set_status(stack, nhf, "active")
    wait_listed(stack, hlf, True, "reinstated HLF mentor with a valid certification restored")
    wait_for(lambda: on_public_page(stack, hlf), timeout=10, what="the mentor to be back on the public page")
    wait_for(lambda: [(r["operation"], r["status"]) for r in queue(stack, hlf)] == [("remove", "done"), ("restore", "done")],
             timeout=SYNC_TIMEOUT, what="the restore row done")
    assert listed_values_written(stack, hlf) == [False, True], "each change written exactly once"
    with stack.connect() as conn:
        state = conn.execute("select listed from website_listing_state where mentor_id = %s", (hlf,)).fetchone()
    assert state == (True,)

    # The NHF mentor went through the same steps without a queue row or a single request.
    assert queue(stack, nhf) == []
    assert writes_for(stack, nhf) == []
    assert stack.admin.contact(str(nhf)) is None


def test_nightly_expiry_reminds_once_each_then_expires_and_renewal_restores(stack: Stack):
    today = today_in_oslo()
    expiry_day = today
    # Valid through tonight (23:00 Oslo): the reminder nights, backfilled today, remind about it
    # (reminders go out only while a certification is valid on the day they are sent). A lapse is
    # no change event: the certification is settled data, and the website hears of the lapse from
    # the nightly expiry, as in production.
    expires_at = datetime.combine(expiry_day, dtime(23, 0), tzinfo=OSLO)
    hlf = new_mentor(stack, "HLF", "E2E Berit Expiry", cert_expires_at=expires_at, listed_in_dynamics=True,
                     settled=True)
    nhf = new_mentor(stack, "NHF", "E2E Nora Expiry", cert_expires_at=expires_at, settled=True)

    expected: dict[int, int] = {}
    for threshold in (30, 14, 7):
        run_nightly_expiry(stack, expiry_day - timedelta(days=threshold))
        expected[threshold] = 1
        for mentor in (hlf, nhf):
            assert reminders(stack, mentor) == expected, f"reminders after the {threshold}-day night"
            assert notifications(stack, mentor) == expected
        assert status_of(stack, hlf) == "active" and queue(stack, hlf) == []

    # Then the days pass (nobody edits anything, so no trigger fires): the certification lapsed
    # yesterday at noon, and tonight's run expires it.
    with stack.connect() as conn:
        conn.execute("set session_replication_role = replica")
        conn.execute("update certifications set expires_at = %s where mentor_id = any(%s)",
                     (datetime.combine(today - timedelta(days=1), dtime(12, 0), tzinfo=OSLO), [hlf, nhf]))
    wait_for(lambda: automation_has_ticked(stack, "nightly_reconciliation_automation"), timeout=SYNC_TIMEOUT,
             what="the reconciliation automation's first tick")
    run_nightly_expiry(stack, today)
    assert status_of(stack, hlf) == "expired_cert"
    assert status_of(stack, nhf) == "expired_cert"
    # Tonight's expiry succeeded, so the daemon's automation starts tonight's reconciliation (the
    # older nights above are backfills and start none), tagged to share the Dynamics limit.
    automatic = {**night_tags(today), "mentor_pipeline/dynamics": "reconciliation",
                 "dagster/sensor_name": "nightly_reconciliation_automation"}
    [reconciliation] = wait_for(lambda: runs_tagged(stack, automatic), timeout=SYNC_TIMEOUT,
                                what="the night's reconciliation started by its expiry")
    status = stack.wait_for_run(reconciliation["runId"])
    assert status == "SUCCESS", stack.run_failure_message(reconciliation["runId"])
    wait_listed(stack, hlf, False, "HLF mentor with a lapsed certification removed")
    wait_for(lambda: queue(stack, hlf)[-1]["status"] == "done", timeout=SYNC_TIMEOUT, what="the remove row done")
    [row] = queue(stack, hlf)
    assert (row["operation"], row["triggered_by_event"]) == ("remove", "nightly_expiry")

    # Scheduler retries and re-runs of the same nights add nothing: the reminder nights again
    # through the same SQL the job calls, and tonight once more through the operators' CLI.
    with stack.connect() as conn:
        for threshold in (30, 14, 7):
            again = nightly_expiry_once(conn, expiry_day - timedelta(days=threshold))
            assert (again.reminders.reminders, again.transitions.total) == (0, 0)
    result = subprocess.run([sys.executable, "-m", "mentor_pipeline.cli", "expiry", "--date", today.isoformat()],
                            env=stack.env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "reminders: 0 new" in result.stdout and "0 mentors moved" in result.stdout, result.stdout
    for mentor in (hlf, nhf):
        assert reminders(stack, mentor) == {30: 1, 14: 1, 7: 1}
        assert notifications(stack, mentor) == {30: 1, 14: 1, 7: 1}
    assert len(queue(stack, hlf)) == 1

    # Reinstated without a renewal: nothing reaches the website (the daemon's tick moves the change
    # into the audit trail with a warning).
    set_status(stack, hlf, "active")

    def reinstatement_audit():
        with stack.connect() as conn:
            return conn.execute("select new_status, warning from mentor_status_audit where mentor_id = %s"
                                " order by id desc limit 1", (hlf,)).fetchone()

    _, warning = wait_for(lambda: (row := reinstatement_audit()) and row[0] == "active" and row,
                          timeout=SYNC_TIMEOUT, what="the reinstatement in the audit trail")
    assert warning, "reinstatement without a valid certification is recorded as a warning"
    assert len(queue(stack, hlf)) == 1
    set_status(stack, hlf, "expired_cert")  # the coordinator undoes the mistake
    wait_for(lambda: all(r["status"] in ("done", "superseded") for r in queue(stack, hlf)),
             timeout=SYNC_TIMEOUT, what="the queue to settle")

    # Renewed certification, then reinstatement: back on the website.
    for mentor in (hlf, nhf):
        renew_certification(stack, mentor)
        set_status(stack, mentor, "active")
    wait_listed(stack, hlf, True, "renewed and reinstated HLF mentor restored")
    wait_for(lambda: on_public_page(stack, hlf), timeout=10, what="the mentor back on the public page")
    assert listed_values_written(stack, hlf)[0] is False and listed_values_written(stack, hlf)[-1] is True

    assert queue(stack, nhf) == [] and writes_for(stack, nhf) == []


def test_rotated_credentials_alert_keep_rows_then_catch_up(stack: Stack):
    mentor = new_mentor(stack, "HLF", "E2E Cecilie Rotation", listed_in_dynamics=True, settled=True)
    old_secret = stack.secret
    new_secret = f"e2e-rotated-{uuid.uuid4().hex}"
    seen = len(stack.webhook.posts)
    # A sync run still lingering from an earlier test may be the one that meets the new secret.
    failed_before = {r["runId"] for r in stack.runs("website_sync_job", limit=200) if r["status"] == "FAILURE"}

    # HLF IT rotates the app registration's secret; the old one stops working at once. Tokens
    # issued before keep working until they expire (up to 60-90 minutes at Entra ID), so a sync
    # run still lingering with one would carry on: end them too, as their expiry would.
    stack.admin.rotate_secret(new_secret)
    stack.admin.revoke_tokens()
    try:
        set_status(stack, mentor, "paused")

        def auth_alerts():
            return [p for p in stack.webhook.posts[seen:] if p.get("kind") == "dynamics_auth_wrong_secret"]

        [first, *_] = wait_for(auth_alerts, timeout=SYNC_TIMEOUT, what="a wrong-secret alert on the webhook")
        assert "DYNAMICS_CLIENT_SECRET" in first["summary"], "the alert says what to do"
        # The failed run is part of that incident (no run_failed post), and the sensor starts no more.
        wait_for(lambda: any(r["status"] == "FAILURE" and r["runId"] not in failed_before
                             for r in stack.runs("website_sync_job", limit=20)),
                 timeout=SYNC_TIMEOUT, what="the failed sync run")

        # Stop the sensor before restarting, so no run is cut off mid-flight by the restart.
        stack.stop_sensor("sync_queue_sensor")
        wait_for(lambda: not stack.active_runs("website_sync_job"), timeout=SYNC_TIMEOUT,
                 what="in-flight sync runs to finish")
        stack.expected_failed_runs |= {r["runId"] for r in stack.runs("website_sync_job") if r["status"] == "FAILURE"}
        [row] = queue(stack, mentor)
        assert (row["status"], row["attempts"]) == ("pending", 0), "an auth failure keeps the row, untouched"
        assert listed(stack, mentor) is True and listed_values_written(stack, mentor) == []

        # The new secret reaches Dagster through its environment: restart webserver and daemon.
        stack.restart_dagster(secret=new_secret)
        stack.start_sensor("sync_queue_sensor")
        wait_listed(stack, mentor, False, "the change kept during the outage applied after the restart")
        wait_for(lambda: queue(stack, mentor)[0]["status"] == "done", timeout=SYNC_TIMEOUT, what="the row done")
        assert listed_values_written(stack, mentor) == [False]
    finally:
        if stack.secret != new_secret:  # the test failed before the restart: leave the stack usable
            stack.admin.rotate_secret(old_secret)
            if stack.sensor_status("sync_queue_sensor") != "RUNNING":
                stack.start_sensor("sync_queue_sensor")

    for post in stack.webhook.posts[seen:]:
        text = repr(post)
        assert old_secret not in text and new_secret not in text and stack.webhook.url not in text


def test_hand_edit_in_dynamics_corrected_by_nightly_reconciliation(stack: Stack):
    assert "nightly_reconciliation_job" in stack.job_names(), "the code location has no nightly_reconciliation_job"
    # Settled: a certification_change row would be drained by the sync run still lingering from
    # the test before, maybe between the commit and the contact's seeding (a dead row, an alert).
    should_be_listed = new_mentor(stack, "HLF", "E2E Dag Handedit", listed_in_dynamics=True, settled=True)
    should_not_be_listed = new_mentor(stack, "HLF", "E2E Eva Handedit", listed_in_dynamics=False, settled=True)
    set_status(stack, should_not_be_listed, "paused")
    wait_for(lambda: queue(stack, should_not_be_listed) and queue(stack, should_not_be_listed)[-1]["status"] == "done",
             timeout=SYNC_TIMEOUT, what="the pause synced")

    # Someone at HLF edits the two contacts by hand in Dynamics, against the app's truth.
    with stack.emulator.client(settings={"client_secret": stack.secret}) as client:
        for mentor, value in ((should_be_listed, False), (should_not_be_listed, True)):
            result = client.set_listed(str(mentor), value)
            assert result.outcome.value == "applied", result
    assert listed(stack, should_be_listed) is False and listed(stack, should_not_be_listed) is True

    run_id = stack.submit_job("nightly_reconciliation_job", tags=night_tags(today_in_oslo()))
    status = stack.wait_for_run(run_id)
    assert status == "SUCCESS", stack.run_failure_message(run_id)
    wait_listed(stack, should_be_listed, True, "hand-unlisted active mentor re-listed by reconciliation")
    wait_listed(stack, should_not_be_listed, False, "hand-listed paused mentor unlisted by reconciliation")
    for mentor in (should_be_listed, should_not_be_listed):
        rows = [r for r in queue(stack, mentor) if r["triggered_by_event"] == "reconciliation"]
        assert len(rows) == 1, f"one reconciliation row per divergent mentor, got {rows}"
