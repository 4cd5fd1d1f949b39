"""Contacts as Dataverse holds them, plus what the Power Pages portal currently shows.

Every write gets a new row version (the ETag). The portal view lags by `portal_delay`: each
contact keeps the history of its public columns, and the portal reads the newest version that
is at least `portal_delay` seconds old.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from mentor_pipeline.emulator.clock import Clock

KEY = "hlf_mentorid"
LISTED = "hlf_websitelisted"
CHAPTER = "hlf_chaptername"
WRITABLE = {"fullname", "firstname", "lastname", "emailaddress1", KEY, CHAPTER, LISTED}
READ_ONLY = {"contactid", "createdon", "modifiedon", "versionnumber"}
COLUMNS = WRITABLE | READ_ONLY
PUBLIC = ("fullname", CHAPTER, LISTED)  # what the portal page shows
BOOLEAN = {LISTED}
NEVER = float("-inf")


@dataclass
class Contact:
    attrs: dict
    seq: int  # creation order: the paging order
    history: list[tuple[float, dict]] = field(default_factory=list)


class ContactStore:
    def __init__(self, clock: Clock):
        self.clock = clock
        self.by_id: dict[str, Contact] = {}
        self.by_key: dict[str, str] = {}
        self._seq = 0
        self._version = 1000
        self._journal: list[tuple[str, Contact | None]] | None = None
        self.dirty = False
        # (row version of the delete, contactid): what change tracking reports as $deletedEntity.
        self.tombstones: list[tuple[int, str]] = []

    @property
    def version(self) -> int:
        """The newest row version handed out: a delta token's high-water mark."""
        return self._version

    def bump_version(self) -> int:
        """A new row version with no row: a boundary no earlier delta token reaches."""
        self._version += 1
        return self._version

    # -- reads -----------------------------------------------------------------------------

    def get(self, contactid: str) -> Contact | None:
        return self.by_id.get(contactid.lower())

    def get_by_key(self, mentor_id: str) -> Contact | None:
        contactid = self.by_key.get(mentor_id)
        return self.by_id.get(contactid) if contactid else None

    def ordered(self, after_seq: int = -1):
        # Dicts keep insertion order, which is seq order.
        return (c for c in self.by_id.values() if c.seq > after_seq)

    def portal_view(self, delay: float) -> dict[str, list[dict]]:
        """Chapter -> mentors the portal shows now: listed as of `delay` seconds ago."""
        cutoff = self.clock.now() - delay
        chapters: dict[str, list[dict]] = {}
        for contact in self.by_id.values():
            seen = next((v for t, v in reversed(contact.history) if t <= cutoff), None)
            if seen and seen.get(LISTED):
                chapters.setdefault(seen.get(CHAPTER) or "(no chapter)", []).append(
                    {"mentor_id": contact.attrs.get(KEY), "name": seen.get("fullname") or contact.attrs.get(KEY)}
                )
        for mentors in chapters.values():
            mentors.sort(key=lambda m: m["name"] or "")
        return dict(sorted(chapters.items()))

    # -- writes ----------------------------------------------------------------------------

    def create(self, values: dict, *, contactid: str | None = None, visible_since: float | None = None) -> Contact:
        contactid = (contactid or str(uuid.uuid4())).lower()
        now = self._stamp()
        attrs = {"contactid": contactid, "createdon": now, **values}
        self._seq += 1
        contact = Contact(attrs=attrs, seq=self._seq)
        self._remember(contactid, None)
        self.by_id[contactid] = contact
        if attrs.get(KEY):
            self.by_key[attrs[KEY]] = contactid
        self._touch(contact, visible_since)
        return contact

    def update(self, contact: Contact, values: dict, *, visible_since: float | None = None) -> None:
        self._remember(contact.attrs["contactid"], contact)
        old_key = contact.attrs.get(KEY)
        contact.attrs.update(values)
        if contact.attrs.get(KEY) != old_key:
            self.by_key.pop(old_key, None)
            if contact.attrs.get(KEY):
                self.by_key[contact.attrs[KEY]] = contact.attrs["contactid"]
        self._touch(contact, visible_since)

    def delete(self, contact: Contact) -> None:
        self._remember(contact.attrs["contactid"], contact)
        del self.by_id[contact.attrs["contactid"]]
        self.by_key.pop(contact.attrs.get(KEY), None)
        self._version += 1
        self.tombstones.append((self._version, contact.attrs["contactid"]))
        self.dirty = True

    def clear(self) -> None:
        self.by_id.clear()
        self.by_key.clear()
        self.dirty = True

    # Change sets are all-or-nothing: journal the prior state of every touched contact.
    def begin(self) -> None:
        self._journal = []

    def commit(self) -> None:
        self._journal = None

    def rollback(self) -> None:
        journal, self._journal = self._journal or [], None
        for contactid, before in reversed(journal):
            current = self.by_id.pop(contactid, None)
            if current is not None:
                self.by_key.pop(current.attrs.get(KEY), None)
            if before is not None:
                self.by_id[contactid] = before
                if before.attrs.get(KEY):
                    self.by_key[before.attrs[KEY]] = contactid

    def _remember(self, contactid: str, contact: Contact | None) -> None:
        if self._journal is not None:
            copy = None if contact is None else Contact(dict(contact.attrs), contact.seq, list(contact.history))
            self._journal.append((contactid, copy))

    def _touch(self, contact: Contact, visible_since: float | None) -> None:
        self._version += 1
        contact.attrs["versionnumber"] = self._version
        contact.attrs["modifiedon"] = self._stamp()
        when = self.clock.now() if visible_since is None else visible_since
        contact.history.append((when, {k: contact.attrs.get(k) for k in PUBLIC}))
        # Keep only what the portal may still need: one version older than any plausible delay.
        if len(contact.history) > 16:
            del contact.history[:-16]
        self.dirty = True

    def _stamp(self) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.clock.wall()))

    # -- state file ------------------------------------------------------------------------

    def save(self, path: str) -> None:
        rows = [c.attrs for c in self.by_id.values()]
        tmp = Path(path).with_suffix(".tmp")
        tmp.write_text(json.dumps({"contacts": rows}))
        tmp.replace(path)
        self.dirty = False

    def load(self, path: str) -> None:
        data = json.loads(Path(path).read_text())
        for attrs in data.get("contacts", []):
            attrs = dict(attrs)
            contactid = attrs.pop("contactid", None)
            for name in ("createdon", "modifiedon", "versionnumber"):
                attrs.pop(name, None)
            self.create(attrs, contactid=contactid, visible_since=NEVER)
        self.dirty = False


def seed_rows(count: int, chapters: tuple[str, ...] = ("Berlin", "Hamburg", "Munich", "Cologne")) -> list[dict]:
    return [
        {"mentor_id": f"m{n:06d}", "full_name": f"Mentor {n:06d}", "chapter": chapters[n % len(chapters)],
         "listed": True}
        for n in range(1, count + 1)
    ]
