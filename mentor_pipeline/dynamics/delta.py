"""Change tracking as the client reads it (Microsoft Learn: "Use change tracking to synchronize
data with external systems"): a GET with `Prefer: odata.track-changes`, pages followed through
`@odata.nextLink`, the `$deltatoken` of the last page's `@odata.deltaLink` kept for next time.

Only the token is kept, not the whole link: it stays valid when DYNAMICS_URL is spelled
differently, and the link is rebuilt from the same `$select` each time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

# Dataverse's codes: change tracking not enabled on the table; the version stamp (token) expired.
NOT_TRACKED_CODE = "0x80072491"
EXPIRED_CODE = "0x80044352"


@dataclass
class ChangePage:
    """One page of a delta read. `changed`: {"contactid", "mentor_id" (None: not a mentor's
    contact), "listed", "chapter"}; `deleted`: contact ids; `delta_token` on the last page only."""

    changed: list[dict] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    delta_token: str | None = None


def is_deleted(row: dict) -> bool:
    return str(row.get("@odata.context", "")).endswith("$deletedEntity")


def token_of(delta_link: str) -> str | None:
    values = parse_qs(urlsplit(delta_link).query).get("$deltatoken")
    return values[0] if values else None


def refused_as(code: str, message: str) -> str | None:
    """'off' or 'expired' when a refused delta read means one of those, else None."""
    if code == NOT_TRACKED_CODE:
        return "off"
    if code == EXPIRED_CODE or "expired" in message.lower():
        return "expired"
    return None
