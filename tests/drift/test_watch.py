"""The drift watch against the emulator over HTTP and real PostgreSQL: hand edits in Dynamics
are marked and put right by the drain, the pipeline's own writes cause nothing, a fight is
bounded, and tracking off / an expired token / paging each have their outcome."""

from __future__ import annotations

import pytest

from mentor_pipeline.drift.run import DriftPolicy, look
from mentor_pipeline.drift.store import day_summary
from mentor_pipeline.operations.store import get_incident
from mentor_pipeline.sync import Drain
from tests.sync.helpers import FAST, hlf_mentors, seed_contacts, sent_writes


@pytest.fixture
def mentors(db, emulator):
    """Three listed HLF mentors and one paused, each with the contact the rule wants; the first
    look (a full read) has taken its token."""
    listed = [str(m) for m in hlf_mentors(db, 3)]
    paused = [str(m) for m in hlf_mentors(db, 1, status="paused")]
    seed_contacts(emulator, listed)
    seed_contacts(emulator, paused, listed=False)
    return listed, paused


def first_look(connect, client, **options):
    report = look(connect, client, **options)
    assert report.full_read and report.drift == []
    return report


def drift_rows(db):
    return db.execute("select mentor_id::text, field, action from dynamics_drift order by id").fetchall()


def queued(db):
    return db.execute("select mentor_id::text, triggered_by_event, status, last_error from sync_queue"
                      " order by id").fetchall()


def test_hand_edits_are_marked_and_put_right_and_the_pipelines_own_writes_cause_nothing(
        db, connect, client, emulator, mentors):
    (a, b, c), (p,) = mentors
    first_look(connect, client)
    admin = emulator.admin
    admin.edit_contact(a, listed=False)  # unlisted by hand
    admin.edit_contact(p, listed=True)  # listed by hand
    admin.edit_contact(b, chapter="Bergen")  # chapter edited
    deleted_contactid = admin.contact(c)["contactid"]
    admin.delete_contact(c)

    report = look(connect, client)
    assert not report.full_read and report.requests == 1
    assert sorted(drift_rows(db)) == sorted([(a, "listed", "queued"), (p, "listed", "queued"),
                                             (b, "chapter", "queued"), (c, "deleted", "queued")])
    assert {(m, event) for m, event, *_ in queued(db)} == {(m, "dynamics_drift") for m in (a, p, b, c)}

    Drain(connect, client, policy=FAST).run()
    assert admin.contact(a)["listed"] is True
    assert admin.contact(p)["listed"] is False
    assert admin.contact(b)["chapter"] == "HLF Oslo"
    (dead,) = [row for row in queued(db) if row[0] == c]
    assert dead[2] == "dead" and "no contact" in dead[3]
    assert deleted_contactid not in {row["contactid"] for row in admin.contacts()}

    # The pipeline's writes come back in the next delta: they match the rule, nothing is marked.
    writes = len(sent_writes(emulator))
    report = look(connect, client)
    assert report.changes_seen == 3 and report.drift == []
    assert len(drift_rows(db)) == 4
    assert not db.execute("select 1 from sync_queue where status = 'pending'").fetchall()
    Drain(connect, client, policy=FAST).run()
    assert len(sent_writes(emulator)) == writes


def test_a_flow_fighting_the_pipeline_is_written_a_bounded_number_of_times_then_one_incident(
        db, connect, client, emulator, mentors, alerts, webhook):
    (a, _, _), _ = mentors
    policy = DriftPolicy(max_corrections=2)
    first_look(connect, client, policy=policy)
    for _ in range(5):
        emulator.admin.edit_contact(a, listed=False)  # the flow changes it back after every write
        look(connect, client, alerts=alerts, policy=policy)
        Drain(connect, client, policy=FAST).run()
    assert [w for w in sent_writes(emulator) if w[0] == a] == [(a, True), (a, True)]
    assert [action for m, _, action in drift_rows(db) if m == a] == ["queued", "queued", "fighting", "fighting",
                                                                      "fighting"]
    incident = get_incident(db, "dynamics_drift_fight", a)
    contactid = emulator.admin.contact(a)["contactid"]
    assert incident.state == "open" and contactid in incident.summary and "hlf_websitelisted" in incident.summary
    assert webhook.kinds().count("dynamics_drift_fight") == 1  # opened once; later looks are occurrences


def test_tracking_off_is_one_incident_saying_what_to_switch_on_and_it_resolves_when_on(
        db, connect, client, emulator, mentors, alerts, webhook):
    emulator.admin.set_change_tracking(False)
    for _ in range(2):
        report = look(connect, client, alerts=alerts)
        assert report.tracking_off and report.drift == []
    incident = get_incident(db, "dynamics_change_tracking_off")
    assert incident.occurrences == 2 and "Track changes" in incident.summary and "Power Apps" in incident.summary
    assert webhook.kinds().count("dynamics_change_tracking_off") == 1
    assert db.execute("select delta_token from dynamics_change_tracking").fetchall() == []

    emulator.admin.set_change_tracking(True)
    assert look(connect, client, alerts=alerts).full_read
    assert get_incident(db, "dynamics_change_tracking_off").state == "resolved"


def test_an_expired_token_gives_one_full_read_then_deltas_again(db, connect, client, emulator, mentors):
    (a, _, _), _ = mentors
    first_look(connect, client)
    emulator.admin.expire_delta_tokens()
    emulator.admin.edit_contact(a, listed=False)
    emulator.admin.clear_requests()

    report = look(connect, client)
    assert report.token_expired and report.full_read and report.changes_seen == 4
    assert [(m, f) for m, f, _ in drift_rows(db)] == [(a, "listed")]
    first, second = emulator.admin.requests()
    assert "$deltatoken" in first["query"] and first["status"] == 400
    assert "$deltatoken" not in second["query"] and second["status"] == 200

    emulator.admin.clear_requests()
    assert not look(connect, client).full_read
    (only,) = emulator.admin.requests()
    assert "$deltatoken" in only["query"]
    assert db.execute("select full_reads from dynamics_change_tracking").fetchone() == (2,)


def test_a_delta_is_read_page_by_page_and_the_token_is_kept_in_the_database(db, connect, client, emulator):
    ids = [str(m) for m in hlf_mentors(db, 5)]
    seed_contacts(emulator, ids)
    policy = DriftPolicy(page_size=2)
    first_look(connect, client, policy=policy)
    (token,) = db.execute("select delta_token from dynamics_change_tracking where entity_set = 'contacts'").fetchone()
    for m in ids:
        emulator.admin.edit_contact(m, listed=False)

    report = look(connect, client, policy=policy)
    assert report.pages == 3 and report.requests == 3
    assert sorted(m for m, *_ in drift_rows(db)) == sorted(ids)
    (newer,) = db.execute("select delta_token from dynamics_change_tracking").fetchone()
    assert newer and newer != token


def test_the_days_drift_is_counted_for_the_nightly_reconciliation(db, connect, client, emulator, mentors):
    (a, b, _), _ = mentors
    first_look(connect, client)
    emulator.admin.edit_contact(a, listed=False)
    emulator.admin.edit_contact(b, chapter="Bergen")
    report = look(connect, client)
    at = report.drift[0]["seen_at"]
    assert day_summary(db, at) == {"drift_watch_found_24h": 2, "drift_watch_queued_24h": 2,
                                   "drift_watch_fighting_24h": 0}
    later = db.execute("select %s::timestamptz + interval '25 hours'", (at,)).fetchone()[0]
    assert day_summary(db, later)["drift_watch_found_24h"] == 0
