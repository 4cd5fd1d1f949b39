"""The coordinator dashboard's RPC functions, called the way PostgREST calls them: in a
transaction as `authenticated` (or `anon`) with the JWT claims in `request.jwt.claims`.

Cast: a coordinator of HLF, a coordinator of NHF, a signed-in user who coordinates nothing,
and an anonymous visitor."""

from __future__ import annotations

import json
import uuid
from contextlib import contextmanager
from datetime import timedelta

import psycopg
import pytest
from psycopg.rows import dict_row

from mentor_pipeline.sync import store
from tests.support.factories import mentor, move_status_changes, organization, queue_rows, set_status

HLF_COORDINATOR = uuid.UUID("00000000-0000-4000-8000-00000000c001")
NHF_COORDINATOR = uuid.UUID("00000000-0000-4000-8000-00000000c002")
PLAIN_USER = uuid.UUID("00000000-0000-4000-8000-00000000c003")


@pytest.fixture
def coordinators(db):
    db.execute("insert into coordinators (user_id, organization_id) values (%s, %s), (%s, %s)",
               (HLF_COORDINATOR, organization(db, "HLF"), NHF_COORDINATOR, organization(db, "NHF")))


@contextmanager
def as_user(db_url: str, user_id: uuid.UUID | None, role: str = "authenticated"):
    """One request's transaction, as PostgREST opens it (claims without `sub` for anon)."""
    claims = {"role": role} | ({"sub": str(user_id)} if user_id else {})
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        conn.execute(f"set local role {role}")
        conn.execute("select set_config('request.jwt.claims', %s, true)", (json.dumps(claims),))
        yield conn


def request_sync(db_url: str, user_id: uuid.UUID | None, mentor_id: uuid.UUID, role: str = "authenticated") -> dict:
    with as_user(db_url, user_id, role) as conn:
        return conn.execute("select * from request_website_sync(%s)", (mentor_id,)).fetchone()


def sync_status(db_url: str, user_id: uuid.UUID | None, mentor_id: uuid.UUID, role: str = "authenticated") -> dict:
    with as_user(db_url, user_id, role) as conn:
        return conn.execute("select * from website_sync_status(%s)", (mentor_id,)).fetchone()


def requests_logged(db) -> list[tuple]:
    return db.execute("select mentor_id, requested_by, queue_id from website_sync_requests order by id").fetchall()


# --- request_website_sync ---------------------------------------------------------------------

def test_a_coordinator_queues_the_write_the_desired_state_asks_for(db_url, db, coordinators):
    listed = mentor(db, "HLF", full_name="Listed")
    lapsed = mentor(db, "HLF", full_name="Lapsed", cert_expires_in=timedelta(days=-1))

    added = request_sync(db_url, HLF_COORDINATOR, listed)
    removed = request_sync(db_url, HLF_COORDINATOR, lapsed)

    [row] = queue_rows(db, listed)
    assert (row["operation"], row["triggered_by_event"], row["status"]) == ("add", "manual_coordinator_action", "pending")
    assert added == {"queue_id": row["id"], "operation": "add", "triggered_by_event": "manual_coordinator_action",
                     "status": "pending", "available_at": row["available_at"]}
    [row] = queue_rows(db, lapsed)
    assert (row["operation"], removed["queue_id"]) == ("remove", row["id"])
    assert requests_logged(db) == [(listed, HLF_COORDINATOR, added["queue_id"]),
                                   (lapsed, HLF_COORDINATOR, removed["queue_id"])]


def test_asking_twice_while_one_is_pending_rewrites_the_same_row(db_url, db, coordinators):
    mentor_id = mentor(db, "HLF")
    first = request_sync(db_url, HLF_COORDINATOR, mentor_id)
    second = request_sync(db_url, HLF_COORDINATOR, mentor_id)

    [row] = queue_rows(db, mentor_id)
    assert first["queue_id"] == second["queue_id"] == row["id"]
    assert (row["operation"], row["attempts"]) == ("add", 0)


def test_a_request_during_a_retry_backoff_queues_a_change_due_now_that_absorbs_the_retry(db_url, db, coordinators):
    mentor_id = mentor(db, "HLF")
    set_status(db, mentor_id, "paused")
    move_status_changes(db)  # the tick queues its 'remove'
    db.execute("update sync_queue set attempts = 3, available_at = now() + interval '10 minutes',"
               " last_error = 'HTTP 503' where mentor_id = %s", (mentor_id,))

    result = request_sync(db_url, HLF_COORDINATOR, mentor_id)

    retry, requested = queue_rows(db, mentor_id)
    assert result["queue_id"] == requested["id"]
    assert (requested["operation"], requested["triggered_by_event"], requested["attempts"], requested["last_error"]) == (
        "remove", "manual_coordinator_action", 0, None)
    assert db.execute("select %s <= now()", (requested["available_at"],)).fetchone()[0]
    # The next claim writes the mentor once, with the request; the retry is absorbed into it.
    [claimed] = store.claim_batch(db, 10, timedelta(minutes=2), uuid.uuid4())
    assert claimed.id == requested["id"]
    assert [r["status"] for r in queue_rows(db, mentor_id)] == ["superseded", "processing"]


def test_a_coordinator_of_another_organisation_is_refused(db_url, db, coordinators):
    mentor_id = mentor(db, "HLF")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="only a coordinator of the mentor's organisation"):
        request_sync(db_url, NHF_COORDINATOR, mentor_id)
    assert queue_rows(db) == []
    assert requests_logged(db) == []


def test_a_signed_in_user_who_coordinates_nothing_is_refused(db_url, db, coordinators):
    mentor_id = mentor(db, "HLF")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        request_sync(db_url, PLAIN_USER, mentor_id)
    assert queue_rows(db) == []


def test_anon_cannot_call_it_at_all(db_url, db, coordinators):
    mentor_id = mentor(db, "HLF")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for function request_website_sync"):
        request_sync(db_url, None, mentor_id, role="anon")
    assert queue_rows(db) == []


def test_authenticated_without_a_user_id_is_refused(db_url, db, coordinators):
    mentor_id = mentor(db, "HLF")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        request_sync(db_url, None, mentor_id)
    assert queue_rows(db) == []


def test_an_unknown_mentor_gets_the_same_refusal_as_someone_elses(db_url, db, coordinators):
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="only a coordinator"):
        request_sync(db_url, HLF_COORDINATOR, uuid.uuid4())


def test_a_mentor_of_an_organisation_without_a_website_has_nothing_to_sync(db_url, db, coordinators):
    mentor_id = mentor(db, "NHF")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="NHF test organisation does not list its mentors"):
        request_sync(db_url, NHF_COORDINATOR, mentor_id)
    assert queue_rows(db) == []
    assert requests_logged(db) == []


def test_the_internal_functions_are_not_callable_by_the_app(db_url, db, coordinators):
    mentor_id = mentor(db, "HLF")
    for call in ("coordinator_enqueue(%s)", "coordinated_mentor(%s)"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            with as_user(db_url, HLF_COORDINATOR) as conn:
                conn.execute(f"select * from {call}", (mentor_id,))
    assert queue_rows(db) == []


# --- website_sync_status ----------------------------------------------------------------------

def _confirm_queued_write(db, listed: bool, chapter: str | None = "rule") -> None:
    """What the sync processor does: claim the due rows, then record the confirmed write (a
    listing with the rule's chapter unless `chapter` says which, None: none written)."""
    token = uuid.uuid4()
    claimed = db.execute("select q.id, d.chapter_name from claim_sync_batch(10, interval '2 minutes', %s) q"
                         " join mentor_website_desired_state d on d.mentor_id = q.mentor_id", (token,)).fetchall()
    results = [{"id": queue_id, "outcome": "done", "listed": listed,
                "chapter": rule_chapter if chapter == "rule" else chapter} for queue_id, rule_chapter in claimed]
    db.execute("select * from record_sync_outcomes(%s, %s, 8, interval '1 second', interval '1 minute')",
               (token, json.dumps(results)))


def test_a_listing_confirmed_without_the_rules_chapter_differs(db_url, db, coordinators):
    mentor_id = mentor(db, "HLF")
    request_sync(db_url, HLF_COORDINATOR, mentor_id)
    _confirm_queued_write(db, listed=True, chapter="Another chapter")
    assert sync_status(db_url, HLF_COORDINATOR, mentor_id)["state"] == "differs"


def test_status_follows_a_request_from_waiting_to_confirmed(db_url, db, coordinators):
    mentor_id = mentor(db, "HLF")

    before = sync_status(db_url, HLF_COORDINATOR, mentor_id)
    assert before == {"wanted_listed": True, "confirmed_listed": None, "confirmed_at": None, "change_waiting": False,
                      "waiting_operation": None, "waiting_since": None, "public_page_by": None, "state": "never_synced"}

    request_sync(db_url, HLF_COORDINATOR, mentor_id)
    [row] = queue_rows(db, mentor_id)
    waiting = sync_status(db_url, HLF_COORDINATOR, mentor_id)
    assert (waiting["change_waiting"], waiting["waiting_operation"], waiting["waiting_since"]) == (True, "add", row["created_at"])
    assert (waiting["public_page_by"], waiting["state"]) == (None, "waiting")

    _confirm_queued_write(db, listed=True)
    (confirmed_at,) = db.execute("select last_synced_at from website_listing_state where mentor_id = %s",
                                 (mentor_id,)).fetchone()
    done = sync_status(db_url, HLF_COORDINATOR, mentor_id)
    assert (done["confirmed_listed"], done["confirmed_at"], done["change_waiting"], done["state"]) == (
        True, confirmed_at, False, "in_sync")
    assert done["public_page_by"] == confirmed_at + timedelta(minutes=15)


def test_a_status_change_the_tick_has_not_moved_yet_is_a_change_waiting(db_url, db, coordinators):
    mentor_id = mentor(db, "HLF")
    request_sync(db_url, HLF_COORDINATOR, mentor_id)
    _confirm_queued_write(db, listed=True)
    assert sync_status(db_url, HLF_COORDINATOR, mentor_id)["state"] == "in_sync"

    set_status(db, mentor_id, "paused")  # in the inbox until the tick
    (changed_at,) = db.execute("select changed_at from mentor_status_inbox where mentor_id = %s", (mentor_id,)).fetchone()
    waiting = sync_status(db_url, HLF_COORDINATOR, mentor_id)
    assert (waiting["change_waiting"], waiting["waiting_operation"], waiting["waiting_since"], waiting["state"]) == (
        True, None, changed_at, "waiting")

    move_status_changes(db)
    moved = sync_status(db_url, HLF_COORDINATOR, mentor_id)
    assert (moved["change_waiting"], moved["waiting_operation"], moved["waiting_since"], moved["state"]) == (
        True, "remove", changed_at, "waiting")


def test_status_shows_a_website_that_differs_from_the_app(db_url, db, coordinators):
    mentor_id = mentor(db, "HLF")
    # Reconciliation read Dynamics and found the mentor unlisted; nothing is queued yet.
    db.execute("insert into website_listing_state (mentor_id, listed) values (%s, false)", (mentor_id,))
    status = sync_status(db_url, HLF_COORDINATOR, mentor_id)
    assert (status["wanted_listed"], status["confirmed_listed"], status["state"]) == (True, False, "differs")


def test_status_of_a_mentor_without_a_website(db_url, db, coordinators):
    mentor_id = mentor(db, "NHF")
    status = sync_status(db_url, NHF_COORDINATOR, mentor_id)
    assert (status["wanted_listed"], status["change_waiting"], status["state"]) == (None, False, "website_off")


@pytest.mark.parametrize(("user_id", "role"), [(NHF_COORDINATOR, "authenticated"), (PLAIN_USER, "authenticated"),
                                               (None, "anon")], ids=["nhf-coordinator", "plain-user", "anon"])
def test_status_is_refused_to_everyone_but_the_organisations_coordinators(db_url, db, coordinators, user_id, role):
    mentor_id = mentor(db, "HLF")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        sync_status(db_url, user_id, mentor_id, role)


# --- coordinators -----------------------------------------------------------------------------

def test_a_user_sees_only_their_own_coordinator_rows(db_url, db, coordinators):
    with as_user(db_url, HLF_COORDINATOR) as conn:
        rows = conn.execute("select user_id from coordinators").fetchall()
    assert rows == [{"user_id": HLF_COORDINATOR}]
    with as_user(db_url, PLAIN_USER) as conn:
        assert conn.execute("select count(*) as n from coordinators").fetchone() == {"n": 0}
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        with as_user(db_url, HLF_COORDINATOR) as conn:
            conn.execute("insert into coordinators (user_id, organization_id) select %s, organization_id"
                         " from coordinators", (PLAIN_USER,))
