"""Helpers for the reconciliation tests; the ones they share with the sync tests live in
tests/sync/helpers.py (import those from there)."""

from __future__ import annotations

from tests.sync.helpers import hlf_mentors, seed_contacts


def writes_sent(emulator) -> list[dict]:
    """Every request that could change Dataverse (PATCH alone or inside $batch, POST $batch)."""
    return [e for e in emulator.admin.requests() if e["method"] in ("PATCH", "POST", "DELETE", "PUT")]


def in_sync_world(db, emulator, count: int) -> list:
    """`count` active, certified HLF mentors, each with a listed contact, nothing queued."""
    mentors = hlf_mentors(db, count)
    seed_contacts(emulator, mentors, listed=True)
    return mentors
