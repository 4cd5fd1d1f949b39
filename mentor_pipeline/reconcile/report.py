"""What a reconciliation or force sync found and did: the asset's metadata, the CLI's summary."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import pandas as pd

from mentor_pipeline import markdown
from mentor_pipeline.reconcile.diff import CLASSIFICATIONS
from mentor_pipeline.sync.report import DrainReport
from mentor_pipeline.vocabulary import Classification


@dataclass
class ReconcileReport:
    kind: str  # reconciliation | force_sync
    dry_run: bool
    run_id: uuid.UUID | None = None  # reconciliation_runs.id (None for a dry run: nothing is written)
    counts: dict[str, int] = field(default_factory=dict)
    # Divergent mentors (or, for a force sync, the mentors written) with their outcome.
    changes: pd.DataFrame | None = None
    unknown_contacts: int = 0
    unknown_contacts_listed: int = 0
    queued: int = 0
    drain: DrainReport | None = None
    # After the re-sync: mentors whose write is still on its way, and those still wrong.
    in_flight: int = 0
    still_divergent: int = 0
    duplicates: list[dict] = field(default_factory=list)
    read_seconds: float = 0.0
    seconds: float = 0.0

    @property
    def divergent(self) -> int:
        return self.counts.get("divergent", 0)

    @property
    def failed(self) -> bool:
        """Anything a person must look at: an auth failure, dead rows, contacts missing in
        Dynamics for mentors who should be listed, divergence left, duplicates."""
        drain = self.drain
        return bool(
            (drain is not None and (drain.auth_error or drain.dead))
            or self.still_divergent
            or self.missing_contacts
            or self.duplicates
        )

    @property
    def missing_contacts(self) -> int:
        if self.changes is None or self.changes.empty or "classification" not in self.changes:
            return 0
        absent = self.changes[(self.changes["classification"] == Classification.CONTACT_ABSENT) & self.changes["should_be_listed"]]
        return int(len(absent))

    def summary(self) -> dict[str, int | float | str | None]:
        """Flat counts: stored with the run and shown as metadata."""
        result: dict[str, int | float | str | None] = dict(self.counts)
        result.update({
            "queued": self.queued,
            "in_flight": self.in_flight,
            "still_divergent": self.still_divergent,
            "missing_contacts": self.missing_contacts,
            "unknown_contacts": self.unknown_contacts,
            "unknown_contacts_listed": self.unknown_contacts_listed,
            "duplicates": len(self.duplicates),
            "read_seconds": round(self.read_seconds, 3),
            "seconds": round(self.seconds, 3),
        })
        if self.drain is not None:
            result.update({"applied": self.drain.applied, "dead": self.drain.dead, "retried": self.drain.retried,
                           "superseded": self.drain.superseded, "released": self.drain.released})
        return result

    def changes_markdown(self, limit: int = 50) -> str:
        if self.changes is None or self.changes.empty:
            return "_No differences: the website shows exactly what the app says._" if self.kind == "reconciliation" \
                else "_Nothing to write._"
        rows = [[markdown.Code(row.mentor_id), row.status, "yes" if row.should_be_listed else "no", row.dynamics_state,
                 row.classification, row.action, getattr(row, "result", "") or ""]
                for row in self.changes.head(limit).itertuples(index=False)]
        return markdown.table(["mentor", "status", "should be listed", "Dynamics", "classification", "action", "result"],
                              rows, total=len(self.changes), see="reconciliation_log")

    def counts_markdown(self) -> str:
        return markdown.table(["classification", "mentors"],
                              [[name, self.counts.get(name, 0)] for name in CLASSIFICATIONS if name in self.counts],
                              right={"mentors"})

    def text_lines(self) -> list[str]:
        """The CLI's summary table."""
        s = self.summary()
        title = f"{self.kind.replace('_', ' ')}{' (dry run: nothing changed)' if self.dry_run else ''}"
        rows = [("mentors checked", s.get("checked", 0))]
        rows += [(name.replace("_", " "), s.get(name, 0)) for name in CLASSIFICATIONS if name in s]
        rows += [("left to the queue", s.get("action_left_to_queue", 0)),
                 ("queued for re-sync" if not self.dry_run else "would be queued", self.queued if not self.dry_run
                  else s.get("action_add", 0) + s.get("action_remove", 0))]
        if self.drain is not None:
            rows += [("applied", self.drain.applied), ("dead", self.drain.dead), ("to retry", self.drain.retried),
                     ("superseded", self.drain.superseded)]
        if not self.dry_run:
            rows += [("still in flight", self.in_flight), ("still divergent", self.still_divergent)]
        rows += [("contacts missing in Dynamics (should be listed)", self.missing_contacts),
                 ("contacts with no HLF mentor in the app", self.unknown_contacts)]
        if not self.dry_run and self.kind == "reconciliation":
            rows.append(("duplicates for manual review", len(self.duplicates)))
        width = max(len(label) for label, _ in rows)
        lines = [title, "-" * max(len(title), width + 10)]
        lines += [f"{label:<{width}}  {value:>8}" for label, value in rows]
        lines.append(f"{'seconds':<{width}}  {self.seconds:>8.1f}")
        return lines
