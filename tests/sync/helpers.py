"""Helpers for the website sync tests: bulk mentors, emulator contacts, what Dataverse received."""

from __future__ import annotations

import re
import threading
import uuid
from datetime import datetime, timedelta
from urllib.parse import unquote

from mentor_pipeline.sync import QueuePolicy

# Small leases and backoffs keep the suite fast; the production defaults are minutes.
FAST = QueuePolicy(
    batch_size=200,
    lease=timedelta(seconds=2),
    max_attempts=3,
    backoff_base=timedelta(milliseconds=200),
    backoff_max=timedelta(seconds=1),
)

_KEY = re.compile(r"hlf_mentorid='([^']+)'")


def hlf_mentors(db, count: int, *, status: str = "active", org: str = "HLF", cert_days: int = 365) -> list[uuid.UUID]:
    """`count` mentors of `org` (one chapter), each with a certification, inserted in bulk. They
    existed before the test: the outbox changes their certifications marked are taken away."""
    org_id = db.execute(
        "insert into organizations (code, name, website_sync_enabled) values (%s, %s, %s)"
        " on conflict (code) do update set code = excluded.code returning id",
        (org, f"{org} test", org == "HLF"),
    ).fetchone()[0]
    chapter_id = db.execute(
        "insert into chapters (organization_id, name) values (%s, %s)"
        " on conflict (organization_id, name) do update set name = excluded.name returning id",
        (org_id, f"{org} Oslo"),
    ).fetchone()[0]
    rows = db.execute(
        "insert into mentors (organization_id, chapter_id, full_name, status)"
        " select %s, %s, 'Mentor ' || g, %s from generate_series(1, %s) g returning id",
        (org_id, chapter_id, status, count),
    ).fetchall()
    ids = [row[0] for row in rows]
    db.execute(
        "insert into certifications (mentor_id, issued_at, expires_at)"
        " select m, now() - interval '300 days', now() + make_interval(days => %s) from unnest(%s::uuid[]) m",
        (cert_days, ids),
    )
    db.execute("delete from sync_queue where status = 'pending' and triggered_by_event = 'certification_change'"
               " and mentor_id = any(%s::uuid[])", (ids,))
    return ids


def db_now(db) -> datetime:
    """The database's clock: the moment tests count from when they pass a time instead of waiting."""
    return db.execute("select now()").fetchone()[0]


def seed_contacts(emulator, mentor_ids, *, listed: bool = True) -> None:
    emulator.admin.seed_contacts(
        [{"mentor_id": str(m), "full_name": f"Mentor {m}", "chapter": "HLF Oslo", "listed": listed} for m in mentor_ids]
    )


def set_statuses(db, mentor_ids, status: str) -> None:
    db.execute("update mentors set status = %s where id = any(%s::uuid[])", (status, [str(m) for m in mentor_ids]))


def sent_writes(emulator) -> list[tuple[str, bool]]:
    """Every contact write Dataverse received (inside $batch or alone), in order: (mentor id, listed)."""
    writes = []
    for entry in emulator.admin.requests():
        if entry["method"] != "PATCH":
            continue
        match = _KEY.search(unquote(entry["path"]))
        body = entry.get("body") or {}
        writes.append((match.group(1), body.get("hlf_websitelisted")))
    return writes


def listed_in_dynamics(emulator) -> dict[str, bool]:
    return {c["mentor_id"]: c.get("listed") for c in emulator.admin.contacts()}


def queue_statuses(db) -> dict[str, int]:
    return dict(db.execute("select status, count(*) from sync_queue group by status").fetchall())


def drains_at_once(count: int, connect, emulator, policy: QueuePolicy, **run_options) -> list:
    """`count` processors draining together, each with its own client, released at once (a
    barrier), so on a loaded machine one cannot finish before the others have opened theirs.
    Returns their reports; any processor's exception fails the caller."""
    from mentor_pipeline.sync import Drain

    ready = threading.Barrier(count, timeout=60)
    reports, errors = [], []

    def processor():
        try:
            with emulator.client(batch_size=policy.batch_size // 2 or 1, max_in_flight=2) as client:
                ready.wait()
                reports.append(Drain(connect, client, policy=policy).run(**run_options))
        except Exception as exc:  # raised below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=processor) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return reports
