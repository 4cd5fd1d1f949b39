"""Helpers for the reconciliation tests (on top of tests/sync/helpers.py)."""

from __future__ import annotations

from tests.sync.helpers import (
    FAST,
    hlf_mentors,
    listed_in_dynamics,
    queue_statuses,
    seed_contacts,
    sent_writes,
    set_statuses,
)

__all__ = ["FAST", "hlf_mentors", "listed_in_dynamics", "queue_statuses", "seed_contacts", "sent_writes",
           "set_statuses", "writes_sent", "in_sync_world"]


def writes_sent(emulator) -> list[dict]:
    """Every request that could change Dataverse (PATCH alone or inside $batch, POST $batch)."""
    return [e for e in emulator.admin.requests() if e["method"] in ("PATCH", "POST", "DELETE", "PUT")]


def in_sync_world(db, emulator, count: int) -> list:
    """`count` active, certified HLF mentors, each with a listed contact, nothing queued."""
    mentors = hlf_mentors(db, count)
    seed_contacts(emulator, mentors, listed=True)
    return mentors
