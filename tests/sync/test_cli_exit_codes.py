"""Break-glass exit codes tell the truth: 0 only when nothing due is left undone; 3 for rows
another process holds (with until when), 4 still pending after failed attempts, 5 dead; `--wait`
waits for other processes' leases and finishes the work."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from mentor_pipeline.cli import leftover
from mentor_pipeline.cli.leftover import queue_left
from mentor_pipeline.operations.store import get_incident
from tests.support.cli import call_cli
from tests.support.factories import move_status_changes
from tests.sync.helpers import hlf_mentors, queue_statuses, seed_contacts, sent_writes, set_statuses

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def dynamics_env(emulator, monkeypatch):
    for name, value in emulator.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("ALERT_WEBHOOK_URL", raising=False)


def summary_line(out: str) -> str:
    return out.strip().splitlines()[-1]


def undone(db) -> int:
    (count,) = db.execute("select count(*) from sync_queue where sync_change_waiting(status)").fetchone()
    return count


def lease_to_a_crashed_process(db, seconds: float) -> None:
    """What a processor that died mid-batch leaves: its rows leased to its token until the lease runs out.
    Its claim moved the status changes committed before it into the queue first."""
    move_status_changes(db)
    db.execute("update sync_queue set status = 'processing', lease_token = %s,"
               " locked_until = now() + make_interval(secs => %s) where status = 'pending'", (uuid.uuid4(), seconds))


def test_nothing_due_left_is_exit_0(db, emulator, dynamics_env, capsys):
    mentors = hlf_mentors(db, 30)
    seed_contacts(emulator, mentors)
    set_statuses(db, mentors, "paused")
    code, out, err = call_cli(capsys, "sync")
    assert code == 0, out + err
    assert summary_line(out) == "mentor-pipeline sync: nothing due is left undone"
    assert queue_statuses(db) == {"done": 30}


def test_a_sync_after_a_crash_reports_the_leased_rows_then_wait_finishes_them(db, emulator, dynamics_env, capsys,
                                                                             monkeypatch):
    mentors = hlf_mentors(db, 3000)
    seed_contacts(emulator, mentors)
    set_statuses(db, mentors, "paused")
    lease_to_a_crashed_process(db, 600)  # held for the whole of both commands, however slow the machine
    (until,) = db.execute("select max(locked_until) from sync_queue").fetchone()

    code, out, err = call_cli(capsys, "sync")
    assert code == 3, out + err
    assert summary_line(out) == (f"mentor-pipeline sync: left undone: 3,000 leased by another process until "
                                 f"{until:%H:%M:%S} UTC (mentor-pipeline sync --wait finishes them)")
    assert sent_writes(emulator) == [] and queue_statuses(db) == {"processing": 3000}

    def the_lease_runs_out(seconds):
        # What waiting does, without the wait: by the next poll the crashed process's lease is over.
        db.execute("update sync_queue set locked_until = now() - interval '1 second' where status = 'processing'")

    monkeypatch.setattr(leftover, "wait_for_foreign_leases",
                        functools.partial(leftover.wait_for_foreign_leases, sleep=the_lease_runs_out))
    code, out, err = call_cli(capsys, "sync", "--wait")
    assert code == 0, out + err
    assert "waiting for 3,000 row(s) leased by another process" in err
    assert summary_line(out) == "mentor-pipeline sync: nothing due is left undone"
    assert queue_statuses(db) == {"done": 3000}
    assert Counter(Counter(m for m, _ in sent_writes(emulator)).values()) == {1: 3000}


def test_dead_rows_are_exit_5(db, emulator, dynamics_env, capsys):
    with_contact, without_contact = hlf_mentors(db, 2, status="paused")
    seed_contacts(emulator, [with_contact], listed=False)
    set_statuses(db, [with_contact, without_contact], "active")  # listing a missing contact: dead
    code, out, err = call_cli(capsys, "sync")
    assert code == 5, out + err
    assert summary_line(out) == ("mentor-pipeline sync: left undone: 1 dead "
                                 "(need a person: select * from sync_queue where status = 'dead')")
    # An old dead row is not this command's news: the next sync is clean.
    assert call_cli(capsys, "sync")[0] == 0


def test_rows_waiting_for_their_retry_are_exit_4_with_the_next_retry(db, emulator, dynamics_env, capsys):
    mentors = hlf_mentors(db, 5)
    seed_contacts(emulator, mentors)
    set_statuses(db, mentors, "paused")
    move_status_changes(db)  # the tick after the app's change
    db.execute("update sync_queue set attempts = 2, last_error = 'unavailable: HTTP 503',"
               " available_at = date_trunc('second', now()) + interval '10 minutes'")
    (retry_at,) = db.execute("select min(available_at) from sync_queue").fetchone()
    code, out, err = call_cli(capsys, "sync")
    assert code == 4, out + err
    assert summary_line(out) == (f"mentor-pipeline sync: left undone: 5 still pending after failed attempts "
                                 f"(next retry {retry_at:%H:%M:%S} UTC)")


def test_the_break_glass_sync_alerts_on_the_bound_the_environment_sets(db, emulator, dynamics_env, capsys,
                                                                       monkeypatch):
    mentors = hlf_mentors(db, 2)
    seed_contacts(emulator, mentors)
    set_statuses(db, mentors, "paused")
    # WhoAmI takes the one request of a 3 s window: the $batch waits out a Retry-After of about 3 s,
    # longer than the 1.2 s bound the environment sets (the default is 5 minutes).
    emulator.admin.configure(request_limit=1, window_seconds=3)
    monkeypatch.setenv("MENTOR_PIPELINE_STALL_ALERT_MINUTES", "0.02")

    code, out, err = call_cli(capsys, "sync")

    assert code == 0, out + err
    assert queue_statuses(db) == {"done": 2}
    incident = get_incident(db, "dynamics_throttled")
    assert incident is not None and incident.state == "open"
    assert "more than the 0.02 min bound" in incident.summary


def test_the_highest_code_wins_and_every_part_is_named(db):
    mentors = hlf_mentors(db, 4)
    set_statuses(db, mentors, "paused")
    move_status_changes(db)  # the tick after the app's change
    ids = [row[0] for row in db.execute("select id from sync_queue order by id")]
    db.execute("update sync_queue set status = 'dead', processed_at = now() where id = %s", (ids[0],))
    db.execute("update sync_queue set attempts = 1, available_at = now() + interval '1 minute' where id = %s", (ids[1],))
    db.execute("update sync_queue set status = 'processing', lease_token = gen_random_uuid(),"
               " locked_until = now() + interval '1 minute' where id = %s", (ids[2],))
    (started,) = db.execute("select now() - interval '1 second'").fetchone()
    left = queue_left(db, started)
    assert (left.dead_since, left.retry_pending, left.leased, left.due_untried) == (1, 1, 1, 1)
    assert left.exit_code == 5
    assert left.summary().startswith("left undone: 1 dead")
    assert "1 still pending after failed attempts" in left.summary() and "1 leased by another process" in left.summary()
    assert "1 due and not yet tried" in left.summary()


def test_what_is_left_is_decided_at_the_moment_given_not_the_wall_clock(db):
    mentors = hlf_mentors(db, 2)
    set_statuses(db, mentors, "paused")
    move_status_changes(db)  # the tick after the app's change
    waiting, leased = [row[0] for row in db.execute("select id from sync_queue order by id")]
    (now,) = db.execute("select date_trunc('second', now())").fetchone()
    db.execute("update sync_queue set available_at = %s + interval '10 minutes' where id = %s", (now, waiting))
    db.execute("update sync_queue set status = 'processing', lease_token = gen_random_uuid(),"
               " locked_until = %s + interval '1 minute' where id = %s", (now, leased))

    left = queue_left(db, now)
    assert (left.retry_pending, left.next_retry_at, left.leased, left.due_untried, left.expired_leases) == (
        1, now + timedelta(minutes=10), 1, 0, 0)
    assert left.exit_code == 4

    # Eleven minutes on: the row's wait is over and the lease has run out, whatever the wall clock says.
    later = queue_left(db, now, now=now + timedelta(minutes=11))
    assert (later.retry_pending, later.leased, later.due_untried, later.expired_leases) == (0, 0, 1, 1)
    assert later.summary() == ("left undone: 1 due and not yet tried; "
                               "1 left by a stopped process (lease ran out)")


def test_four_concurrent_syncs_never_claim_done_while_rows_are_left(db, db_url, emulator):
    """The issue's probe: four `mentor-pipeline sync` at once. A process may only exit 0 when
    nothing is left; the others say which rows another process still holds (exit 3). With
    --wait, all four finish with 0. Every row is written exactly once either way."""
    for wait in (False, True):
        emulator.admin.clear_requests()
        mentors = hlf_mentors(db, 2500)
        seed_contacts(emulator, mentors)
        set_statuses(db, mentors, "paused")
        emulator.admin.set_faults(latency=0.15)  # each $batch of 100 takes a while: drains overlap
        env = {**os.environ, **emulator.env(), "DATABASE_URL": db_url, "PYTHONPATH": str(REPO)}
        env.pop("ALERT_WEBHOOK_URL", None)
        argv = [sys.executable, "-m", "mentor_pipeline.cli", "sync"] + (["--wait"] if wait else [])
        processes = [subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                     for _ in range(4)]
        codes, lies = [], []
        running = list(processes)
        deadline = time.monotonic() + 240
        while running and time.monotonic() < deadline:
            for process in list(running):
                if process.poll() is not None:
                    running.remove(process)
                    # Rows only get done during the test: anything undone now was undone at its exit.
                    if process.returncode == 0 and undone(db):
                        lies.append(undone(db))
            time.sleep(0.02)
        outputs = [p.communicate(timeout=10) for p in processes]
        codes = [p.returncode for p in processes]
        assert not running, "a sync did not finish"
        assert lies == [], f"a sync exited 0 while {lies} row(s) were left"
        for code, (out, err) in zip(codes, outputs):
            assert code in ((0,) if wait else (0, 3)), out + err
            if code == 3:
                assert "leased by another process until" in summary_line(out)
            else:
                assert summary_line(out) == "mentor-pipeline sync: nothing due is left undone"
        assert undone(db) == 0
        writes = Counter(m for m, _ in sent_writes(emulator))
        assert len(writes) == 2500 and set(writes.values()) == {1}
        emulator.admin.clear_faults()
        db.execute("delete from sync_queue")


def test_reconcile_and_force_sync_report_rows_another_process_holds(db, emulator, dynamics_env, capsys):
    mentors = hlf_mentors(db, 20)
    seed_contacts(emulator, mentors)  # listed in Dynamics
    set_statuses(db, mentors, "paused")
    lease_to_a_crashed_process(db, 600)
    for argv in (["force-sync", "--mentor", str(mentors[0])], ["reconcile"]):
        code, out, err = call_cli(capsys, *argv)
        assert code == 3, out + err
        assert "leased by another process until" in summary_line(out)
        assert summary_line(out).startswith(f"mentor-pipeline {argv[0]}: left undone: 20 leased")
    assert sent_writes(emulator) == []  # the held mentors wait for their rows' owner


def changes_arrive_once(db, monkeypatch, mentors, status="paused") -> None:
    """The app is live: right after the drain's last claim, before the command counts what is
    left, these mentors change (the moment a change is sure to be left to the next drain)."""
    real = leftover.queue_left
    pending = [mentors]

    def queue_left_while_the_app_changes(conn, *args, **kwargs):
        if pending:
            set_statuses(db, pending.pop(), status)
            move_status_changes(db)  # the sensor's tick after the app's change
        return real(conn, *args, **kwargs)

    monkeypatch.setattr(leftover, "queue_left", queue_left_while_the_app_changes)


def test_changes_that_arrive_while_sync_runs_are_reported_not_a_failure(db, emulator, dynamics_env, capsys,
                                                                        monkeypatch):
    mentors = hlf_mentors(db, 6)
    seed_contacts(emulator, mentors)
    due, arriving = mentors[:4], mentors[4:]
    set_statuses(db, due, "paused")
    changes_arrive_once(db, monkeypatch, arriving)

    code, out, err = call_cli(capsys, "sync")

    assert code == 0, out + err
    assert summary_line(out) == ("mentor-pipeline sync: nothing due is left undone; "
                                 "2 arrived while running (the next drain takes them)")
    assert queue_statuses(db) == {"done": 4, "pending": 2}
    assert {m for m, _ in sent_writes(emulator)} == {str(m) for m in due}


def test_a_change_due_at_the_start_and_left_undone_still_fails_beside_the_arrivals(db, emulator, dynamics_env,
                                                                                   capsys, monkeypatch):
    from mentor_pipeline.sync.report import DrainReport
    from mentor_pipeline.sync.run import Drain

    mentors = hlf_mentors(db, 5)
    seed_contacts(emulator, mentors)
    due, arriving = mentors[:3], mentors[3:]
    set_statuses(db, due, "paused")
    changes_arrive_once(db, monkeypatch, arriving)
    monkeypatch.setattr(Drain, "run", lambda self, **limits: DrainReport())  # a drain that takes nothing

    code, out, err = call_cli(capsys, "sync")

    assert code == 4, out + err
    assert summary_line(out) == ("mentor-pipeline sync: left undone: 3 due and not yet tried; "
                                 "2 arrived while running (the next drain takes them)")


def test_rows_after_the_start_are_arrivals_unless_the_command_queued_them(db):
    first, second, third = hlf_mentors(db, 3)
    set_statuses(db, [first], "paused")
    move_status_changes(db)  # the command's tick before its start
    start = leftover.command_start(db)
    set_statuses(db, [second, third], "paused")
    move_status_changes(db)  # the tick after the app's change
    (own,) = db.execute("select id from sync_queue where mentor_id = %s", (second,)).fetchone()

    left = queue_left(db, start)
    assert (left.due_untried, left.arrived, left.exit_code) == (1, 2, 4)
    left = queue_left(db, start.with_own([own]))
    assert (left.due_untried, left.arrived) == (2, 1)
    assert left.summary() == "left undone: 2 due and not yet tried; 1 arrived while running (the next drain takes them)"
    # Without a start, every waiting row counts, as before.
    assert queue_left(db, start.at).due_untried == 3


def test_several_drains_add_up_to_one_report_with_the_429_waits_and_the_archived_rows():
    from mentor_pipeline.cli.breakglass import merge_reports
    from mentor_pipeline.sync.report import DrainReport

    total = DrainReport()
    merge_reports(total, DrainReport(batches=2, rate_limit_waits=3, archived=40, seconds=1.5))
    merge_reports(total, DrainReport(batches=1, rate_limit_waits=1, archived=2, seconds=0.5,
                                     stopped_reason="stopped after the time budget"))
    assert (total.batches, total.rate_limit_waits, total.archived, total.seconds) == (3, 4, 42, 2.0)
    assert total.stopped_reason == "stopped after the time budget"


def test_sync_under_live_traffic_exits_0_every_time(db, db_url, emulator, dynamics_env, capsys):
    """The issue's probe: the app keeps changing mentors while `mentor-pipeline sync` runs (it
    used to exit 4 in 3-6 runs of 10). What was due at the start is done every time."""
    import psycopg
    import threading

    mentors = hlf_mentors(db, 400)
    seed_contacts(emulator, mentors)
    due, live = mentors[:300], mentors[300:]
    emulator.admin.set_faults(latency=0.05)  # each $batch takes a while: changes land mid-drain
    stop = threading.Event()

    def the_app_keeps_changing_mentors():
        with psycopg.connect(db_url, autocommit=True) as app:
            n = 0
            while not stop.is_set():
                set_statuses(app, [live[n % len(live)]], "paused" if (n // len(live)) % 2 == 0 else "active")
                n += 1
                time.sleep(0.01)

    for status in ("paused", "active", "paused"):
        set_statuses(db, due, status)
        app = threading.Thread(target=the_app_keeps_changing_mentors)
        stop.clear()
        app.start()
        try:
            code, out, err = call_cli(capsys, "sync")
        finally:
            stop.set()
            app.join()
        assert code == 0, out + err
        assert summary_line(out).startswith("mentor-pipeline sync: nothing due is left undone"), out
        (undone_due,) = db.execute("select count(*) from sync_queue where sync_change_waiting(status)"
                                   " and mentor_id = any(%s::uuid[])", ([str(m) for m in due],)).fetchone()
        assert undone_due == 0
