"""Every change that alters who should be listed reaches Dynamics: each source of change marks the
mentor in the outbox (real PostgreSQL triggers), and a drain writes what the one rule says
(the emulator over HTTP). Final contact state and queue rows are asserted."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from mentor_pipeline.reconcile import reconcile
from mentor_pipeline.sync import Drain
from mentor_pipeline.sync.store import desired_listing
from tests.support.factories import certify, move_status_changes, next_writes, queue_rows
from tests.sync.helpers import FAST, hlf_mentors, listed_in_dynamics, seed_contacts, sent_writes, set_statuses


def pending(db, mentor_id, at=None) -> list[tuple[str, str]]:
    """The write a drain at `at` (default now) makes for the mentor: its newest waiting change."""
    return [(r["operation"], r["triggered_by_event"]) for r in next_writes(db, mentor_id, at)]


def drain(connect, client, at=None):
    """A drain at `at` (default: the database's now())."""
    return Drain(connect, client, policy=FAST, clock=lambda: at).run()


def test_a_deleted_mentor_is_unlisted_and_the_change_survives_the_delete(db, connect, client, emulator):
    [mentor] = hlf_mentors(db, 1)
    seed_contacts(emulator, [mentor])
    set_statuses(db, [mentor], "paused")
    move_status_changes(db)  # the tick after the app's change, before the delete
    db.execute("delete from mentors where id = %s", (mentor,))

    assert pending(db, mentor) == [("remove", "mentor_deleted")]
    report = drain(connect, client)

    assert [(r.result, r.listed) for r in report.rows] == [("applied", False)]
    assert listed_in_dynamics(emulator) == {str(mentor): False}
    assert emulator.admin.contact(str(mentor)) is not None  # unlisted, never deleted


def test_a_lapsed_certification_is_unlisted_without_the_nightly_job(db, connect, client, emulator):
    [mentor] = hlf_mentors(db, 1)
    seed_contacts(emulator, [mentor])
    # The certification lapses a minute from now; nothing writes to any table when it does.
    [(lapse,)] = db.execute("update certifications set expires_at = now() + interval '1 minute' where mentor_id = %s"
                            " returning expires_at", (mentor,)).fetchall()
    db.execute("delete from sync_queue")

    assert drain(connect, client, at=lapse - timedelta(microseconds=1)).rows == []  # valid until then
    report = drain(connect, client, at=lapse)  # its tick marks the lapse

    assert [(r.operation, r.triggered_by_event, r.listed) for r in report.rows] == [
        ("remove", "certification_lapsed", False)]
    assert listed_in_dynamics(emulator) == {str(mentor): False}
    assert db.execute("select status from mentors where id = %s", (mentor,)).fetchone()[0] == "active"


def test_the_clock_scan_marks_each_crossing_once_and_only_for_syncing_active_mentors(db):
    at = datetime.now(timezone.utc)
    [hlf, hlf_paused] = hlf_mentors(db, 2)
    set_statuses(db, [hlf_paused], "paused")
    move_status_changes(db)  # the tick after the app's change
    [nhf] = hlf_mentors(db, 1, org="NHF")
    db.execute("update website_sync_clock set checked_until = %s", (at,))
    db.execute("update certifications set expires_at = %s + interval '1 minute'", (at,))
    db.execute("delete from sync_queue")  # the edits' own changes: this test is about the clock

    assert db.execute("select enqueue_certification_clock(%s)", (at + timedelta(seconds=30),)).fetchone()[0] == 0
    assert db.execute("select enqueue_certification_clock(%s)", (at + timedelta(minutes=2),)).fetchone()[0] == 1
    assert db.execute("select enqueue_certification_clock(%s)", (at + timedelta(minutes=3),)).fetchone()[0] == 0
    assert [r["mentor_id"] for r in queue_rows(db)] == [hlf]
    assert [event for _, event in pending(db, hlf, at + timedelta(minutes=3))] == ["certification_lapsed"]
    assert nhf and hlf_paused  # never marked: no website sync / not listed anyway


def test_a_renewal_recorded_in_advance_counts_from_its_issue_date(db, connect, client, emulator):
    [mentor] = hlf_mentors(db, 1, status="expired_cert", cert_days=-1)  # lapsed yesterday
    seed_contacts(emulator, [mentor], listed=False)
    certify(db, mentor, expires_in=timedelta(days=730), issued_ago=timedelta(days=-30))  # issued next month
    set_statuses(db, [mentor], "active")
    move_status_changes(db)  # the tick after the app's change

    [wish] = desired_listing(db, [mentor]).values()
    assert not wish.should_be_listed and wish.reason.startswith("certification lapsed")
    assert [w for (w,) in db.execute(
        "select warning from mentor_status_audit where mentor_id = %s", (mentor,)).fetchall()] == [
        "reinstated without a valid certification: website listing not restored"]
    drain(connect, client)
    assert listed_in_dynamics(emulator) == {str(mentor): False}

    # The day the renewal takes effect, the clock scan lists the mentor.
    [(takes_effect,)] = db.execute(
        "update certifications set issued_at = now() + interval '1 minute'"
        " where mentor_id = %s and issued_at > now() returning issued_at", (mentor,)).fetchall()
    # The edit is a change of its own: written at once (the moment before it takes effect,
    # however slow the machine), and it says "not yet".
    at_once = drain(connect, client, at=takes_effect - timedelta(microseconds=1))
    assert [(r.triggered_by_event, r.listed) for r in at_once.rows] == [("certification_change", False)]
    report = drain(connect, client, at=takes_effect)
    assert [(r.triggered_by_event, r.listed) for r in report.rows] == [("certification_lapsed", True)]
    assert listed_in_dynamics(emulator) == {str(mentor): True}


@pytest.mark.parametrize("change", ["insert", "update", "delete"])
def test_certification_changes_reach_the_website(db, connect, client, emulator, change):
    [mentor] = hlf_mentors(db, 1, cert_days=-5)  # active, certification lapsed: not listed
    seed_contacts(emulator, [mentor], listed=False)
    if change == "insert":
        certify(db, mentor, expires_in=timedelta(days=365), issued_ago=timedelta(days=1), settled=False)
        expected = True
    elif change == "update":
        db.execute("update certifications set expires_at = now() + interval '1 year' where mentor_id = %s", (mentor,))
        expected = True
    else:
        certify(db, mentor, expires_in=timedelta(days=365), issued_ago=timedelta(days=1))
        drain(connect, client)
        seed_contacts(emulator, [mentor], listed=True)
        db.execute("delete from certifications where mentor_id = %s and expires_at > now()", (mentor,))
        expected = False

    assert [e for _, e in pending(db, mentor)] == ["certification_change"]
    drain(connect, client)
    assert listed_in_dynamics(emulator) == {str(mentor): expected}


def test_an_organisation_toggle_marks_all_its_mentors_in_one_statement(db, connect, client, emulator):
    nhf = hlf_mentors(db, 3, org="NHF")
    seed_contacts(emulator, nhf, listed=False)

    db.execute("update organizations set website_sync_enabled = true where code = 'NHF'")
    assert {r["triggered_by_event"] for r in queue_rows(db)} == {"organization_change"} and len(queue_rows(db)) == 3
    drain(connect, client)
    assert listed_in_dynamics(emulator) == {str(m): True for m in nhf}

    db.execute("update organizations set website_sync_enabled = false where code = 'NHF'")
    drain(connect, client)
    assert listed_in_dynamics(emulator) == {str(m): False for m in nhf}


def test_a_chapter_move_and_a_chapter_rename_rewrite_the_chapter(db, connect, client, emulator):
    [mentor] = hlf_mentors(db, 1)
    seed_contacts(emulator, [mentor])  # listed under "HLF Oslo"
    bergen = db.execute("insert into chapters (organization_id, name) select organization_id, 'Bergen'"
                        " from mentors where id = %s returning id", (mentor,)).fetchone()[0]

    db.execute("update mentors set chapter_id = %s where id = %s", (bergen, mentor))
    assert pending(db, mentor) == [("add", "chapter_change")]
    drain(connect, client)
    assert emulator.admin.contact(str(mentor))["chapter"] == "Bergen"

    db.execute("update chapters set name = 'Bergen sentrum' where id = %s", (bergen,))
    drain(connect, client)
    assert emulator.admin.contact(str(mentor))["chapter"] == "Bergen sentrum"
    assert emulator.admin.contact(str(mentor))["listed"] is True
    state = db.execute("select listed, chapter_name from website_listing_state where mentor_id = %s", (mentor,)).fetchone()
    assert state == (True, "Bergen sentrum")


def test_reconciliation_unlists_orphaned_listed_contacts(db, connect, emulator):
    [kept, deleted] = hlf_mentors(db, 2)
    [nhf] = hlf_mentors(db, 1, org="NHF")
    stranger = str(uuid.uuid4())  # a listed contact whose key the app never had
    seed_contacts(emulator, [kept, deleted, nhf, stranger])
    db.execute("delete from mentors where id = %s", (deleted,))
    db.execute("delete from sync_queue")  # as if the deletion's change had been lost

    with emulator.client() as client:
        report = reconcile(Drain(connect, client, policy=FAST))

    assert listed_in_dynamics(emulator) == {str(kept): True, str(deleted): False, str(nhf): False, stranger: False}
    assert report.counts["listed_mentor_gone"] == 2 and report.counts["listed_without_website_sync"] == 1
    logged = dict(db.execute("select mentor_id::text, classification from reconciliation_log").fetchall())
    assert logged == {str(deleted): "listed_mentor_gone", stranger: "listed_mentor_gone",
                      str(nhf): "listed_without_website_sync"}


def test_reconciliation_rewrites_a_chapter_changed_by_hand(db, connect, emulator):
    [mentor] = hlf_mentors(db, 1)
    emulator.admin.seed_contacts([{"mentor_id": str(mentor), "full_name": "M", "chapter": "Wrong", "listed": True}])

    with emulator.client() as client:
        report = reconcile(Drain(connect, client, policy=FAST))

    assert report.counts["chapter_differs"] == 1
    assert emulator.admin.contact(str(mentor))["chapter"] == "HLF Oslo"
    assert sent_writes(emulator)[-1] == (str(mentor), True)


def test_the_rule_reads_every_certification_date_the_column_allows(db):
    [forever, far] = hlf_mentors(db, 2)
    db.execute("update certifications set expires_at = 'infinity' where mentor_id = %s", (forever,))
    db.execute("update certifications set expires_at = '20000-01-01' where mentor_id = %s", (far,))
    wishes = desired_listing(db, [forever, far])
    assert wishes[forever].should_be_listed and wishes[far].should_be_listed


def test_the_probe_and_the_bulk_form_of_the_latest_certification_agree(db):
    mentors = hlf_mentors(db, 6)
    now = datetime.now(timezone.utc)
    for n, mentor in enumerate(mentors):  # histories: older, newer, future-issued, same-day ties
        certify(db, mentor, expires_in=timedelta(days=10 * n - 20), issued_ago=timedelta(days=400 + n))
        certify(db, mentor, expires_in=timedelta(days=800), issued_ago=timedelta(days=-n))
    bulk = dict(db.execute("select mentor_id, certification_id from mentor_latest_certification").fetchall())
    probe = dict(db.execute(
        "select m.id, l.certification_id from mentors m cross join lateral latest_certification(m.id, now()) l"
    ).fetchall())
    assert bulk == probe and len(bulk) == len(mentors) and now
