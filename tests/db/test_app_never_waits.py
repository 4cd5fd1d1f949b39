"""The app's multi-mentor transactions, run at once for a few seconds against the pipeline's
triggers and a drain, never wait on each other or on the drain because of the outbox, and never
deadlock: status changes of several mentors in random order, bulk pauses of a chapter,
certification renewals of several mentors, chapter renames, an organisation switching website
sync on and off, the nightly transition and a drain alongside.

Each worker owns the app rows it changes (one worker changes statuses, one renews, one renames,
one toggles), so without the pipeline none of them ever waits on another: a wait or a deadlock
here is the pipeline's. A sampler watches pg_stat_activity for any session waiting on a lock.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from datetime import timedelta

import psycopg
import pytest

from mentor_pipeline.sync import store
from mentor_pipeline.sync.store import Outcome, QueuePolicy

pytestmark = pytest.mark.db

SECONDS = 6


def _world(db) -> dict[str, list]:
    """Two organisations (HLF syncs; NHF is switched on and off), their chapters and certified
    mentors, and one chapter of HLF mentors whose certification lapsed (the nightly's work)."""
    db.execute("""
        insert into organizations (code, name, website_sync_enabled) values ('HLF', 'HLF', true), ('NHF', 'NHF', false);
        insert into chapters (organization_id, name)
        select o.id, o.code || ' chapter ' || g from organizations o, generate_series(1, 3) g;
        insert into chapters (organization_id, name) select id, 'HLF lapsed' from organizations where code = 'HLF';
        insert into mentors (organization_id, chapter_id, full_name, status)
        select c.organization_id, c.id, c.name || ' mentor ' || g, 'active' from chapters c, generate_series(1, 8) g;
        insert into certifications (mentor_id, issued_at, expires_at)
        select m.id, now() - interval '300 days',
               case when c.name = 'HLF lapsed' then now() - interval '1 day' else now() + interval '65 days' end
          from mentors m join chapters c on c.id = m.chapter_id;
        delete from sync_queue;
    """)
    mentors = [r[0] for r in db.execute(
        "select m.id from mentors m join chapters c on c.id = m.chapter_id where c.name <> 'HLF lapsed'").fetchall()]
    chapters = [r[0] for r in db.execute("select id from chapters where name <> 'HLF lapsed'").fetchall()]
    return {"mentors": mentors, "chapters": chapters}


class Worker(threading.Thread):
    """Runs `step(conn, rng)` in a loop on its own connection until stopped; keeps every error."""

    def __init__(self, db_url: str, name: str, step, stop: threading.Event):
        super().__init__(name=name, daemon=True)
        self.db_url, self.step, self.stop = db_url, step, stop
        self.errors: list[BaseException] = []
        self.transactions = 0

    def run(self):
        rng = random.Random(self.name)
        with psycopg.connect(self.db_url) as conn:
            # A wait longer than this fails the transaction, so no wait can hide in a slow run.
            conn.execute("set lock_timeout = '3s'")
            conn.commit()
            while not self.stop.is_set():
                try:
                    self.step(conn, rng)
                    conn.commit()
                    self.transactions += 1
                except psycopg.Error as exc:
                    conn.rollback()
                    self.errors.append(exc)


def _pause(rng: random.Random) -> None:
    """Hold the transaction open a moment, so transactions overlap."""
    time.sleep(rng.uniform(0.002, 0.02))


def _status_changes(world):
    def step(conn, rng):
        if rng.random() < 0.25:  # a bulk pause (or its undo) of one chapter
            conn.execute("update mentors set status = %s where chapter_id = %s",
                         (rng.choice(["paused", "active"]), rng.choice(world["chapters"])))
        else:  # 2-5 mentors, in random order, one statement each
            for mentor_id in rng.sample(world["mentors"], rng.randint(2, 5)):
                conn.execute("update mentors set status = %s where id = %s",
                             (rng.choice(["paused", "active", "retired"]), mentor_id))
                _pause(rng)
        _pause(rng)
    return step


def _renewals(world):
    def step(conn, rng):
        for mentor_id in rng.sample(world["mentors"], rng.randint(2, 5)):
            conn.execute("insert into certifications (mentor_id, issued_at, expires_at)"
                         " values (%s, now() - interval '1 day', now() + interval '365 days')", (mentor_id,))
            _pause(rng)
    return step


def _renames(world):
    def step(conn, rng):
        conn.execute("update chapters set name = split_part(name, ' #', 1) || ' #' || %s where id = %s",
                     (uuid.uuid4().hex[:6], rng.choice(world["chapters"])))
        _pause(rng)
    return step


def _toggles(_world):
    def step(conn, rng):
        conn.execute("update organizations set website_sync_enabled = not website_sync_enabled where code = 'NHF'")
        _pause(rng)
        time.sleep(0.2)
    return step


def _nightly(_world):
    def step(conn, rng):
        conn.execute("select * from expire_mentors_with_lapsed_certifications(now())")
        time.sleep(0.3)
    return step


def _drain_pass(conn: psycopg.Connection) -> int:
    """A drain's pass without HTTP: the tick, then claims written as the rule says. Returns the
    mentors written; a claim never holds two rows of one mentor."""
    store.tick(conn)
    conn.commit()
    written = 0
    while True:
        token = uuid.uuid4()
        rows = store.claim_batch(conn, 50, timedelta(minutes=2), token)
        if not rows:
            return written
        assert len({r.mentor_id for r in rows}) == len(rows)
        desired = store.desired_listing(conn, [r.mentor_id for r in rows])
        store.record_outcomes(conn, token, [
            Outcome(r.id, "done", listed=desired[r.mentor_id].should_be_listed,
                    chapter=desired[r.mentor_id].chapter_name if desired[r.mentor_id].should_be_listed else None)
            for r in rows], QueuePolicy())
        conn.commit()
        written += len(rows)


def _drains(_world):
    def step(conn, rng):
        _drain_pass(conn)
        time.sleep(0.05)
    return step


def _sample_lock_waits(db_url: str, stop: threading.Event, seen: list[str]) -> None:
    """Every session seen waiting on a lock another session holds (a row, a transaction, an
    advisory lock), with what the holder runs. Not a wait for a new page of a table two sessions
    insert into (`extend`): that waits on the disk, not on a transaction, and has no holder."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        while not stop.is_set():
            seen.extend(f"{event}: {query} (held by: {holder})" for query, event, holder in conn.execute(
                "select left(w.query, 120), w.wait_event,"
                "       (select string_agg(left(h.query, 120), '; ') from pg_stat_activity h"
                "         where h.pid = any (pg_blocking_pids(w.pid)))"
                "  from pg_stat_activity w"
                " where w.datname = current_database() and w.wait_event_type = 'Lock'"
                "   and cardinality(pg_blocking_pids(w.pid)) > 0").fetchall())
            time.sleep(0.005)


def test_the_apps_multi_mentor_transactions_never_wait_or_deadlock_on_the_outbox(db_url, db):
    world = _world(db)
    stop = threading.Event()
    workers = [Worker(db_url, name, make(world), stop) for name, make in [
        ("status changes", _status_changes), ("renewals", _renewals), ("renames", _renames),
        ("toggles", _toggles), ("nightly", _nightly), ("drain", _drains)]]
    waits: list[str] = []
    sampler = threading.Thread(target=_sample_lock_waits, args=(db_url, stop, waits), daemon=True)
    sampler.start()
    for worker in workers:
        worker.start()
    time.sleep(SECONDS)
    stop.set()
    for worker in workers + [sampler]:
        worker.join(60)

    assert {w.name: w.errors for w in workers if w.errors} == {}
    assert sorted(set(waits)) == []
    assert all(w.transactions > 0 for w in workers), {w.name: w.transactions for w in workers}

    # Every change reached the website: after a last drain, each mentor's confirmed listing is
    # the rule's answer (a mentor never written is one the rule does not list).
    with psycopg.connect(db_url) as conn:
        _drain_pass(conn)
        _drain_pass(conn)  # the re-check notes of the switch-ons mark on their second tick
    wrong = db.execute("select mentor_id, should_be_listed, confirmed_listed, chapter_name"
                       " from reconciliation_app_state()"
                       " where not coalesce(confirmed_matches, not should_be_listed)").fetchall()
    assert wrong == []
