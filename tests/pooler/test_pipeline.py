"""The pipeline's own work through PgBouncer in transaction mode, as on Supabase's port 6543:
drains (one lingering, then another; two at once), the nightly expiry twice at once, and the
reconciliation. Each would crash on a prepared statement or a leaked lock if anything relied on
a server session."""

from __future__ import annotations

import os
import subprocess
from collections import Counter
from datetime import timedelta

from mentor_pipeline.cli import main
from mentor_pipeline.db.connection import connect
from mentor_pipeline.expiry.dates import today_in_oslo
from mentor_pipeline.sync import Drain, QueuePolicy
from tests.expiry.helpers import expiring_on, mentor_expiring, outcome, reminders_of, status_of
from tests.reconcile.helpers import writes_sent
from tests.support.cli import cli_argv
from tests.support.factories import move_status_changes, queue_rows
from tests.sync.helpers import (
    FAST,
    drains_at_once,
    hlf_mentors,
    listed_in_dynamics,
    queue_statuses,
    seed_contacts,
    sent_writes,
    set_statuses,
)


def test_a_drain_that_lingers_then_a_second_drain_both_finish(pooled_db, pooled_db_url, client, emulator):
    # What crashed the second sensor-started run: the first run's idle polls (the same query many
    # times) left a prepared statement on the server connection the second run was handed.
    first, second = hlf_mentors(pooled_db, 2)
    seed_contacts(emulator, [first, second])
    pooled = lambda: connect(pooled_db_url)  # noqa: E731 - the factory Drain takes
    set_statuses(pooled_db, [first], "paused")
    Drain(pooled, client, policy=FAST).run(linger_seconds=1.5, poll_interval_seconds=0.05)
    set_statuses(pooled_db, [second], "paused")
    Drain(pooled, client, policy=FAST).run(linger_seconds=1.5, poll_interval_seconds=0.05)
    assert queue_statuses(pooled_db) == {"done": 2}
    assert listed_in_dynamics(emulator) == {str(first): False, str(second): False}


def test_two_drains_at_once_through_the_pooler_write_each_change_once(pooled_db, pooled_db_url, emulator):
    mentors = hlf_mentors(pooled_db, 600)
    seed_contacts(emulator, mentors)
    set_statuses(pooled_db, mentors, "paused")
    policy = QueuePolicy(batch_size=50, lease=timedelta(seconds=30))
    emulator.admin.set_faults(latency=0.02)  # each $batch takes a moment: the drains overlap
    reports = drains_at_once(2, lambda: connect(pooled_db_url), emulator, policy)

    writes = Counter(mentor for mentor, _ in sent_writes(emulator))
    assert len(writes) == 600 and set(writes.values()) == {1}
    assert set(listed_in_dynamics(emulator).values()) == {False}
    assert sum(r.applied for r in reports) == 600


def test_the_nightly_expiry_twice_at_once_through_the_pooler_does_everything_once(pooled_db, pooled_db_url):
    today = today_in_oslo()
    lapsed = mentor_expiring(pooled_db, expiring_on(today, -1), name="Lapsed Larsen")
    soon = mentor_expiring(pooled_db, expiring_on(today, 7), name="Soon Solberg")
    env = {**os.environ, "DATABASE_URL": pooled_db_url}
    runs = [subprocess.Popen(cli_argv("expiry", "--date", today.isoformat()), env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    results = [(run.wait(timeout=180), *run.communicate()) for run in runs]
    assert [code for code, _, _ in results] == [0, 0], results

    assert status_of(pooled_db, lapsed) == "expired_cert"
    assert [days for days, _ in reminders_of(pooled_db, soon)] == [7]
    assert [r["triggered_by_event"] for r in queue_rows(pooled_db, lapsed)] == ["nightly_expiry"]
    before = outcome(pooled_db)
    assert main(["expiry", "--date", today.isoformat()]) == 0  # and once more, in this process
    assert outcome(pooled_db) == before


def test_reconciliation_through_the_pooler_re_syncs_a_lost_removal(pooled_db, emulator, monkeypatch, capsys):
    mentors = hlf_mentors(pooled_db, 5)
    seed_contacts(emulator, mentors, listed=True)
    set_statuses(pooled_db, [mentors[0]], "paused")
    move_status_changes(pooled_db)  # the tick queues the removal
    pooled_db.execute("delete from sync_queue")  # the removal was lost: Dynamics still lists them
    for name, value in emulator.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("ALERT_WEBHOOK_URL", raising=False)

    assert main(["reconcile"]) == 0, capsys.readouterr()
    assert listed_in_dynamics(emulator)[str(mentors[0])] is False
    assert [r["triggered_by_event"] for r in queue_rows(pooled_db, mentors[0])] == ["reconciliation"]
    emulator.admin.clear_requests()
    assert main(["reconcile"]) == 0  # nothing diverges now: it reads, and writes nothing
    assert writes_sent(emulator) == [] and emulator.admin.requests()
