"""The listing follows the rule for every status the app has, and for one it adds later: every
status change that can alter the rule's answer marks the mentor (real trigger), and a drain
writes the answer (the emulator over HTTP)."""

from __future__ import annotations

import itertools
import re
from datetime import timedelta

import pytest

from mentor_pipeline.sync import Drain
from tests.support.factories import mentor, queue_rows
from tests.sync.helpers import FAST, listed_in_dynamics, sent_writes

# A status the pipeline has never heard of: the app may add one any day.
NEW_STATUS = "on_leave"


def app_statuses(db) -> list[str]:
    """The statuses the app's own check constraint allows."""
    [(definition,)] = db.execute(
        "select pg_get_constraintdef(oid) from pg_constraint where conname = 'mentors_status_check'").fetchall()
    return re.findall(r"'([^']+)'::text", definition)


def allow_new_status(db, statuses: list[str]) -> None:
    allowed = ", ".join(f"'{s}'" for s in [*statuses, NEW_STATUS])
    db.execute("alter table mentors drop constraint mentors_status_check")
    db.execute(f"alter table mentors add constraint mentors_status_check check (status in ({allowed}))")


def rule_says_listed(db, mentor_ids) -> dict[str, bool]:
    return {str(m): listed for m, listed in db.execute(
        "select mentor_id, should_be_listed from website_desired_listing(%s::uuid[])", (mentor_ids,)).fetchall()}


def test_the_app_has_more_statuses_than_the_original_trigger_named(db):
    # The original outbox trigger handled active, paused and expired_cert only.
    assert {"onboarding", "active", "paused", "expired_cert", "retired"} <= set(app_statuses(db))


@pytest.mark.parametrize("certified", [True, False], ids=["valid-certification", "lapsed-certification"])
def test_every_status_transition_leaves_the_website_as_the_rule_says(db, connect, client, emulator, certified):
    statuses = [*app_statuses(db), NEW_STATUS]
    allow_new_status(db, statuses[:-1])
    expires_in = timedelta(days=90 if certified else -3)
    mentors = {(old, new): mentor(db, status=old, full_name=f"{old} to {new}", cert_expires_in=expires_in)
               for old, new in itertools.permutations(statuses, 2)}
    ids = list(mentors.values())
    # Dynamics shows what the rule said before the change (contacts exist for every mentor).
    before = rule_says_listed(db, ids)
    emulator.admin.seed_contacts([{"mentor_id": m, "full_name": m, "chapter": None, "listed": listed}
                                  for m, listed in before.items()])

    for (old, new), mentor_id in mentors.items():
        db.execute("update mentors set status = %s where id = %s", (new, mentor_id))
    after = rule_says_listed(db, ids)
    changed = {m for m in after if after[m] != before[m]}
    if certified:
        assert changed, "with a valid certification, transitions to and from active change the answer"
    # Every change of the rule's answer was marked in the same transaction as the status change.
    assert {str(m) for m in ids if queue_rows(db, m)} >= changed

    Drain(connect, client, policy=FAST).run()

    shown = listed_in_dynamics(emulator)
    wrong = {f"{old} -> {new}" for (old, new), m in mentors.items() if shown[str(m)] != after[str(m)]}
    assert wrong == set()
    assert {m for m, _ in sent_writes(emulator)} >= changed
