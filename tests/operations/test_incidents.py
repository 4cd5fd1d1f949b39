"""Incidents in PostgreSQL: one per (kind, scope), reminders at growing intervals, one resolution,
and exactly one "open" when several processes raise the same incident at once."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from mentor_pipeline.operations import store
from mentor_pipeline.operations.store import get_incident, open_incidents, raise_incident, resolve_incident
from tests.support.db import wait_for_lock_waiters

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=timezone.utc)


def at(hours: float = 0, minutes: float = 0) -> datetime:
    return T0 + timedelta(hours=hours, minutes=minutes)


def test_an_occurrence_opens_the_incident_and_later_ones_only_count(db):
    first = raise_incident(db, "dynamics_unreachable", "", "Dataverse answered 503", {"status": 503}, now=at())
    assert first.notify == "open"
    assert (first.incident.state, first.incident.occurrences, first.incident.first_seen) == ("open", 1, T0)
    for minute in range(1, 30):
        notice = raise_incident(db, "dynamics_unreachable", "", f"Dataverse answered 503 (again {minute})", now=at(minutes=minute))
        assert notice.notify is None
    incident = get_incident(db, "dynamics_unreachable")
    assert (incident.state, incident.occurrences, incident.first_seen, incident.last_seen) == ("open", 30, T0, at(minutes=29))
    assert incident.summary == "Dataverse answered 503 (again 29)"  # the latest occurrence
    assert incident.next_reminder_at == at(hours=1)


def test_reminders_go_out_at_growing_intervals_only_while_it_recurs(db):
    kind = "dynamics_auth_wrong_secret"
    notices = {}
    # One occurrence every 10 minutes for three days.
    for step in range(0, 3 * 24 * 6 + 1):
        notice = raise_incident(db, kind, "", "wrong secret", now=at(minutes=10 * step))
        if notice.notify:
            notices[10 * step / 60] = notice.notify
    # Open at 0; reminders 1 h later, 4 h after that, then every 24 h.
    assert notices == {0: "open", 1: "reminder", 5: "reminder", 29: "reminder", 53: "reminder"}
    incident = get_incident(db, kind)
    assert (incident.state, incident.reminders_sent, incident.next_reminder_at) == ("reminded", 4, at(hours=77))


def test_reminder_intervals_are_configurable(db):
    intervals = (timedelta(minutes=5), timedelta(minutes=15))
    posted = [raise_incident(db, "website_stale", "", "oldest due change waits 20 min", now=at(minutes=m),
                             reminder_intervals=intervals).notify for m in (0, 4, 5, 19, 20, 34, 35)]
    assert posted == ["open", None, "reminder", None, "reminder", None, "reminder"]


def test_scope_keeps_incidents_of_one_kind_apart(db):
    assert raise_incident(db, "run_failed", "website_sync_job", "boom", now=at()).notify == "open"
    assert raise_incident(db, "run_failed", "nightly_expiry_job", "bang", now=at()).notify == "open"
    assert raise_incident(db, "run_failed", "website_sync_job", "boom", now=at(minutes=1)).notify is None
    assert [(i.key, i.occurrences) for i in open_incidents(db)] == [
        ("run_failed:nightly_expiry_job", 1), ("run_failed:website_sync_job", 2)]


def test_resolution_posts_once_and_a_new_occurrence_reopens(db):
    raise_incident(db, "dynamics_throttled", "", "429 for 20 minutes", now=at())
    raise_incident(db, "dynamics_throttled", "", "429 for 25 minutes", now=at(minutes=5))
    resolved = resolve_incident(db, "dynamics_throttled", "", "requests go through again", now=at(minutes=30))
    assert resolved.notify == "resolved"
    assert (resolved.incident.state, resolved.incident.occurrences, resolved.incident.resolved_at) == ("resolved", 2, at(minutes=30))
    assert resolve_incident(db, "dynamics_throttled", "", "still fine", now=at(minutes=31)) is None
    assert resolve_incident(db, "never_raised", "", "fine") is None
    assert open_incidents(db) == []

    reopened = raise_incident(db, "dynamics_throttled", "", "429 again", now=at(hours=2))
    assert reopened.notify == "open"
    assert (reopened.incident.first_seen, reopened.incident.occurrences, reopened.incident.reminders_sent,
            reopened.incident.resolved_at) == (at(hours=2), 1, 0, None)


def test_a_raiser_waiting_on_the_row_lock_finds_the_incident_open_and_stays_quiet(db_url, db):
    """Two processes raise the same new incident at once: the second waits for the first's insert
    to commit, then only counts itself. Exactly one of them is told to post."""
    with psycopg.connect(db_url) as first, psycopg.connect(db_url, autocommit=True) as second:
        with first.transaction():
            row = first.execute("select notify from raise_incident('sync_dead_rows', '', 'dead', '{}', "
                                "array[interval '1 hour'])").fetchone()
            assert row == ("open",)
            result: dict = {}
            waiting = threading.Thread(target=lambda: result.update(
                notice=raise_incident(second, "sync_dead_rows", "", "dead too")))
            waiting.start()
            wait_for_lock_waiters(db, 1)  # the second raiser waits for the first one's row
            assert waiting.is_alive()
        waiting.join(timeout=60)
    assert result["notice"].notify is None and result["notice"].incident.occurrences == 2


def test_many_concurrent_raisers_post_once(db_url):
    threads, notices, barrier = [], [], threading.Barrier(8)

    def raiser():
        with psycopg.connect(db_url, autocommit=True) as conn:
            barrier.wait()
            for _ in range(5):
                notices.append(raise_incident(conn, "run_failed", "website_sync_job", "boom").notify)

    for _ in range(8):
        threads.append(threading.Thread(target=raiser))
        threads[-1].start()
    for thread in threads:
        thread.join(timeout=30)
    assert Counter(notices) == {"open": 1, None: 39}
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert get_incident(conn, "run_failed", "website_sync_job").occurrences == 40


def test_concurrent_resolvers_post_once(db_url, db):
    raise_incident(db, "dynamics_unreachable", "", "down")
    results, barrier = [], threading.Barrier(6)

    def resolver():
        with psycopg.connect(db_url, autocommit=True) as conn:
            barrier.wait()
            results.append(resolve_incident(conn, "dynamics_unreachable", "", "up again"))

    threads = [threading.Thread(target=resolver) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert [r.notify for r in results if r is not None] == ["resolved"]


def test_open_incidents_view_shows_age_and_count(db):
    raise_incident(db, "website_stale", "", "oldest due change waits 40 min", now=datetime.now(timezone.utc) - timedelta(hours=2))
    raise_incident(db, "website_stale", "", "oldest due change waits 45 min")
    kind, occurrences, age = db.execute("select kind, occurrences, age from open_incidents").fetchone()
    assert (kind, occurrences) == ("website_stale", 2) and timedelta(hours=2) <= age < timedelta(hours=3)


def test_no_reminder_interval_is_refused(db):
    with pytest.raises(ValueError, match="at least one interval"):
        raise_incident(db, "x", "", "y", reminder_intervals=())
    with pytest.raises(psycopg.errors.RaiseException, match="at least one reminder interval"):
        db.execute("select * from raise_incident('x', '', 'y', '{}', '{}'::interval[])")


def test_app_roles_cannot_touch_incidents(db_url, db):
    raise_incident(db, "x", "", "y")
    for role in ("anon", "authenticated"):
        with psycopg.connect(db_url) as conn:
            conn.execute(f"set role {role}")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("select * from incidents")
            conn.rollback()
            conn.execute(f"set role {role}")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("select * from raise_incident('x', '', 'y', '{}', array[interval '1 hour'])")


def test_defaults_are_one_four_and_twenty_four_hours():
    assert store.DEFAULT_REMINDER_INTERVALS == (timedelta(hours=1), timedelta(hours=4), timedelta(hours=24))
