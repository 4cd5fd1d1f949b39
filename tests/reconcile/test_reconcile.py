"""Reconciliation and force sync as plain Python, over real PostgreSQL and the emulator."""

from __future__ import annotations

import uuid

import pytest

from mentor_pipeline.reconcile import InvalidMentorIds, force_sync, reconcile
from mentor_pipeline.reconcile.store import run_log
from mentor_pipeline.sync import Drain
from tests.reconcile.helpers import in_sync_world, writes_sent
from tests.support.factories import move_status_changes, queue_rows
from tests.sync.helpers import (
    FAST,
    hlf_mentors,
    listed_in_dynamics,
    seed_contacts,
    sent_writes,
    set_statuses,
)


def _run(connect, client, alerts=None, **kwargs):
    return reconcile(Drain(connect, client, alerts=alerts, policy=FAST), **kwargs)


def test_everything_in_sync_writes_nothing_and_logs_a_clean_run(db, emulator, connect, client):
    in_sync_world(db, emulator, 5)
    emulator.admin.clear_requests()

    report = _run(connect, client)

    assert report.counts["checked"] == 5 and report.counts["in_sync"] == 5 and report.divergent == 0
    assert not report.failed and report.queued == 0
    assert writes_sent(emulator) == [] and queue_rows(db) == []
    [run] = db.execute("select kind, summary->>'in_sync', finished_at is not null from reconciliation_runs").fetchall()
    assert run == ("reconciliation", "5", True)
    # What Dynamics showed is now the known listing (nothing had been synced before).
    assert db.execute("select count(*) filter (where listed) from website_listing_state").fetchone()[0] == 5


def test_hand_edited_dynamics_listings_are_corrected_through_the_queue(db, emulator, connect, client, alerts, webhook):
    mentors = in_sync_world(db, emulator, 6)
    unlisted_by_hand, paused = mentors[0], mentors[1]
    emulator.admin.seed_contacts([{"mentor_id": str(unlisted_by_hand), "full_name": "x", "chapter": "HLF Oslo",
                                   "listed": False}])
    set_statuses(db, [paused], "paused")
    move_status_changes(db)  # the tick queues the removal
    db.execute("delete from sync_queue")  # as if that removal had been lost: Dynamics still lists them
    emulator.admin.clear_requests()

    report = _run(connect, client, alerts=alerts)

    assert report.counts["missing_but_should"] == 1 and report.counts["listed_but_should_not"] == 1
    assert report.counts["in_sync"] == 4 and report.still_divergent == 0 and not report.failed
    assert sorted(sent_writes(emulator)) == sorted([(str(unlisted_by_hand), True), (str(paused), False)])
    assert listed_in_dynamics(emulator)[str(unlisted_by_hand)] is True
    assert listed_in_dynamics(emulator)[str(paused)] is False
    rows = queue_rows(db)
    assert {(r["mentor_id"], r["operation"], r["triggered_by_event"], r["status"]) for r in rows} == {
        (unlisted_by_hand, "add", "reconciliation", "done"), (paused, "remove", "reconciliation", "done")}
    log = {r["mentor_id"]: r for r in run_log(db, report.run_id)}
    assert set(log) == {unlisted_by_hand, paused}  # in-sync mentors are counted, not logged
    assert (log[paused]["app_status"], log[paused]["should_be_listed"], log[paused]["dynamics_state"],
            log[paused]["classification"], log[paused]["action"]) == (
        "paused", False, "listed", "listed_but_should_not", "remove")
    assert log[unlisted_by_hand]["dynamics_state"] == "unlisted" and log[unlisted_by_hand]["action"] == "add"
    assert {r["queue_id"] for r in log.values()} == {r["id"] for r in rows}
    assert webhook.posts == []

    again = _run(connect, client)  # converged: the next night finds nothing
    assert again.divergent == 0 and again.queued == 0


def test_missing_contacts_are_reported_not_created(db, emulator, connect, client, alerts, webhook):
    [present, missing_listable, missing_paused] = hlf_mentors(db, 3)
    seed_contacts(emulator, [present])
    set_statuses(db, [missing_paused], "paused")
    move_status_changes(db)  # the tick queues the removal, then it is lost
    db.execute("delete from sync_queue")

    report = _run(connect, client, alerts=alerts)

    assert report.counts["contact_absent"] == 2 and report.missing_contacts == 1 and report.failed
    changes = report.changes.set_index("mentor_id")
    assert changes.loc[str(missing_listable), "action"] == "add"
    assert changes.loc[str(missing_listable), "result"] == "dead"
    assert changes.loc[str(missing_paused), "action"] == "none"  # not on the website either way
    assert report.still_divergent == 1
    [dead] = [r for r in queue_rows(db) if r["status"] == "dead"]
    assert dead["mentor_id"] == missing_listable and "no contact in Dynamics" in dead["last_error"]
    assert {c["mentor_id"] for c in emulator.admin.contacts()} == {str(present)}  # never created
    assert webhook.kinds() == ["sync_dead_rows"]


def test_a_mentor_pending_in_the_queue_and_divergent_is_left_to_the_queue(db, emulator, connect, client):
    [pending, other] = in_sync_world(db, emulator, 2)
    set_statuses(db, [pending], "paused")  # the trigger queues `remove` (status_change)
    [row] = queue_rows(db)

    report = _run(connect, client)

    changes = report.changes.set_index("mentor_id")
    assert changes.loc[str(pending), "classification"] == "listed_but_should_not"
    assert changes.loc[str(pending), "action"] == "left_to_queue"
    assert report.queued == 0
    [after] = queue_rows(db)
    assert after["id"] == row["id"] and after["triggered_by_event"] == "status_change"  # not rewritten
    assert after["status"] == "done"  # the drain that follows writes it
    assert listed_in_dynamics(emulator) == {str(pending): False, str(other): True}
    [entry] = run_log(db, report.run_id)
    assert entry["action"] == "left_to_queue" and entry["queue_id"] is None


def test_dry_run_shows_the_diff_and_changes_nothing(db, emulator, connect, client):
    mentors = in_sync_world(db, emulator, 4)
    set_statuses(db, mentors[:2], "paused")
    move_status_changes(db)  # the tick queues the removals, then they are lost
    db.execute("delete from sync_queue")
    emulator.admin.clear_requests()
    before = listed_in_dynamics(emulator)

    report = _run(connect, client, dry_run=True)

    assert report.counts["listed_but_should_not"] == 2 and report.run_id is None
    assert set(report.changes["mentor_id"]) == {str(m) for m in mentors[:2]}
    assert "| listed_but_should_not | remove |" in report.changes_markdown()
    methods = [(e["method"], e["path"]) for e in emulator.admin.requests()]
    assert methods and all(method == "GET" for method, _ in methods), methods  # no PATCH, no $batch
    assert listed_in_dynamics(emulator) == before
    assert queue_rows(db) == []
    assert db.execute("select count(*) from reconciliation_runs").fetchone()[0] == 0
    assert db.execute("select count(*) from website_listing_state").fetchone()[0] == 0


def test_force_sync_of_selected_mentors_writes_only_those(db, emulator, connect, client):
    mentors = hlf_mentors(db, 4)
    seed_contacts(emulator, mentors, listed=False)  # all four wrong
    emulator.admin.clear_requests()

    report = force_sync(Drain(connect, client, policy=FAST), mentor_ids=[str(mentors[1])])

    assert sent_writes(emulator) == [(str(mentors[1]), True)]
    assert [(r["mentor_id"], r["triggered_by_event"], r["status"]) for r in queue_rows(db)] == [
        (mentors[1], "force_sync", "done")]
    assert report.queued == 1 and report.drain.applied == 1 and not report.failed
    [entry] = run_log(db, report.run_id)
    assert (entry["classification"], entry["action"], entry["dynamics_state"]) == ("forced", "add", None)


def test_force_sync_of_everyone_rewrites_every_hlf_mentor_only(db, emulator, connect, client):
    hlf = hlf_mentors(db, 3)
    nhf = hlf_mentors(db, 2, org="NHF")
    seed_contacts(emulator, hlf)
    emulator.admin.clear_requests()

    report = force_sync(Drain(connect, client, policy=FAST))

    assert sorted(sent_writes(emulator)) == sorted((str(m), True) for m in hlf)
    assert {r["mentor_id"] for r in queue_rows(db)} == set(hlf) and not set(nhf) & {r["mentor_id"] for r in queue_rows(db)}
    assert report.queued == 3 and report.still_divergent == 0


def test_force_sync_with_invalid_ids_names_them_and_applies_nothing(db, emulator, connect, client):
    [good] = hlf_mentors(db, 1)
    [nhf] = hlf_mentors(db, 1, org="NHF")
    seed_contacts(emulator, [good], listed=False)
    unknown = str(uuid.uuid4())
    emulator.admin.clear_requests()

    with pytest.raises(InvalidMentorIds) as raised:
        force_sync(Drain(connect, client, policy=FAST), mentor_ids=[str(good), "not-a-mentor", unknown, str(nhf)])

    message = str(raised.value)
    assert "not-a-mentor (not a mentor id" in message and f"{unknown} (no such mentor)" in message
    assert f"{nhf} (organisation NHF has no website sync)" in message and str(good) not in message
    assert "nothing was applied" in message
    assert queue_rows(db) == [] and emulator.admin.requests() == []
    assert db.execute("select count(*) from reconciliation_runs").fetchone()[0] == 0


def test_force_sync_dry_run_writes_nothing(db, emulator, connect, client):
    mentors = hlf_mentors(db, 2)
    seed_contacts(emulator, mentors, listed=False)
    emulator.admin.clear_requests()

    report = force_sync(Drain(connect, client, policy=FAST), mentor_ids=[str(mentors[0])], dry_run=True)

    assert report.counts["would_write"] == 1 and list(report.changes["mentor_id"]) == [str(mentors[0])]
    assert all(e["method"] == "GET" for e in emulator.admin.requests())
    assert queue_rows(db) == []
