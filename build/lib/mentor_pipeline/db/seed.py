"""Demo data: HLF (website sync on) and NHF (off), chapters, mentors, certifications at every stage.

Ids are derived from names (uuid5), so the seed is repeatable and the demo can give the
Dynamics emulator the same mentor keys. Seeding twice changes nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from mentor_pipeline.db.connection import connect

_NAMESPACE = uuid.UUID("6f1c8c52-3f0e-4b8e-9d7a-1b2c3d4e5f60")

ORGANIZATIONS = [
    ("HLF", "Hørselshemmedes Landsforbund", True),
    ("NHF", "Norges Handikapforbund", False),
]
CHAPTERS = {
    "HLF": ["HLF Oslo", "HLF Bergen", "HLF Trondheim"],
    "NHF": ["NHF Oslo", "NHF Stavanger"],
}
# Days until the most recent certification expires (None: no certification), per mentor slot.
CERTIFICATION_STAGES = [400, 200, 45, 30, 29, 14, 10, 7, 3, 0, -1, -60, None]
FIRST_NAMES = ["Ingrid", "Ola", "Kari", "Lars", "Nora", "Emil", "Sofie", "Jonas", "Maja", "Henrik",
               "Ida", "Magnus", "Thea", "Sander", "Eline", "Tobias", "Frida", "Mats"]
LAST_NAMES = ["Hansen", "Johansen", "Olsen", "Larsen", "Andersen", "Pedersen", "Nilsen", "Berg", "Haugen"]


@dataclass(frozen=True)
class DemoMentor:
    id: uuid.UUID
    organization_code: str
    chapter_name: str
    full_name: str
    status: str
    days_to_expiry: int | None


def stable_id(*parts: str) -> uuid.UUID:
    return uuid.uuid5(_NAMESPACE, "/".join(parts))


def demo_name(slot: int) -> str:
    """Unique for the first 2 * len(FIRST_NAMES) slots, so the README can name a mentor."""
    first = FIRST_NAMES[slot % len(FIRST_NAMES)]
    last = LAST_NAMES[(slot + slot // len(FIRST_NAMES)) % len(LAST_NAMES)]
    return f"{first} {last}"


def demo_mentors() -> list[DemoMentor]:
    mentors = []
    slot = 0
    for org_code, chapter_names in CHAPTERS.items():
        for chapter_name in chapter_names:
            for _ in range(8 if org_code == "HLF" else 5):
                days = CERTIFICATION_STAGES[slot % len(CERTIFICATION_STAGES)]
                name = demo_name(slot)
                # Mirrors the app: an expired certification has already moved the mentor to
                # expired_cert, and every seventh mentor is on a break.
                if days is not None and days < 0:
                    status = "expired_cert"
                elif slot % 7 == 6:
                    status = "paused"
                else:
                    status = "active"
                mentors.append(DemoMentor(stable_id("mentor", str(slot)), org_code, chapter_name, name, status, days))
                slot += 1
    return mentors


def seed(url: str | None = None, now: datetime | None = None) -> int:
    """Load the demo data; returns how many mentors were new."""
    now = now or datetime.now(timezone.utc)
    with connect(url) as conn, conn.transaction():
        for code, name, sync_enabled in ORGANIZATIONS:
            conn.execute(
                "insert into organizations (id, code, name, website_sync_enabled) values (%s, %s, %s, %s)"
                " on conflict (code) do nothing",
                (stable_id("org", code), code, name, sync_enabled),
            )
            for chapter_name in CHAPTERS[code]:
                conn.execute(
                    "insert into chapters (id, organization_id, name)"
                    " select %s, id, %s from organizations where code = %s"
                    " on conflict do nothing",
                    (stable_id("chapter", chapter_name), chapter_name, code),
                )
        created = 0
        for mentor in demo_mentors():
            cur = conn.execute(
                "insert into mentors (id, organization_id, chapter_id, full_name, status)"
                " select %s, c.organization_id, c.id, %s, %s from chapters c where c.id = %s"
                " on conflict (id) do nothing",
                (mentor.id, mentor.full_name, mentor.status, stable_id("chapter", mentor.chapter_name)),
            )
            if cur.rowcount == 0:
                continue
            created += 1
            if mentor.days_to_expiry is not None:
                expires_at = now + timedelta(days=mentor.days_to_expiry, hours=12)
                conn.execute(
                    "insert into certifications (id, mentor_id, issued_at, expires_at) values (%s, %s, %s, %s)",
                    (stable_id("certification", str(mentor.id)), mentor.id, expires_at - timedelta(days=730), expires_at),
                )
    return created
