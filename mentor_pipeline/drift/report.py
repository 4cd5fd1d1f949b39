"""What one look of the drift watch saw and did."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field

from mentor_pipeline.markdown import table
from mentor_pipeline.vocabulary import DriftAction, DriftField


@dataclass
class LookReport:
    look_id: uuid.UUID
    full_read: bool = False  # no token (first look), or the token had expired
    token_expired: bool = False
    tracking_off: str | None = None  # why no changes could be read
    pages: int = 0
    changes_seen: int = 0  # changed and deleted contacts Dynamics reported
    requests: int = 0
    seconds: float = 0.0
    drift: list[dict] = field(default_factory=list)  # rows of dynamics_drift

    def counts(self) -> dict[str, int]:
        by_action = Counter(row["action"] for row in self.drift)
        return {"drift_found": len(self.drift), **{f"drift_{a.value}": by_action.get(a, 0) for a in DriftAction},
                "contacts_deleted": sum(1 for row in self.drift if row["field"] == DriftField.DELETED),
                "changes_seen": self.changes_seen,
                "pages": self.pages, "requests": self.requests}

    def drift_markdown(self, limit: int = 50) -> str:
        rows = [[str(r["mentor_id"]), str(r["contactid"] or ""), r["field"],
                 "deleted" if r["field"] == DriftField.DELETED else f"{r['dynamics_listed']} / {r['dynamics_chapter']}",
                 f"{r['should_be_listed']} / {r['rule_chapter']}", r["action"]] for r in self.drift[:limit]]
        more = f"\n\n... and {len(self.drift) - limit} more" if len(self.drift) > limit else ""
        return table(["mentor", "contact", "field", "Dynamics (listed / chapter)", "rule", "action"], rows) + more
