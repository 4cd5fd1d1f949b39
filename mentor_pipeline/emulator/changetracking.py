"""Change tracking on `contacts`, as Microsoft Learn documents it ("Use change tracking to
synchronize data with external systems"; the Web API's `Prefer: odata.track-changes`).

- The table's *Track changes* setting (`EntityMetadata.ChangeTrackingEnabled`), shown in
  `EntityDefinitions`. Off: a track-changes request is refused (0x80072491).
- A track-changes GET returns the current rows and, on its last page, an `@odata.deltaLink`
  with an opaque `$deltatoken`. A GET of that link returns the rows created or updated since
  (current values) and the deleted ones (`$deletedEntity`, `id`, `reason`), plus a new link.
- `$filter`, `$orderby`, `$expand` and `$top` are not supported with change tracking.
- Change data is kept for a limited time (`ExpireChangeTrackingInDays`): an older token is
  refused and the client must start over with a full read. The admin API expires every token
  issued so far, which is what happening after that many days looks like to a client.

Rows are found by their row version (`versionnumber`), deletions by the tombstones the store
keeps, so a look costs one pass over the contacts, not a journal of every write.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

# Hex codes: 0x80072491 is what Dataverse answers a delta request on an untracked table. The
# code and wording for an expired token are Dataverse's "ExpiredVersionStamp" error as seen in
# real logs; the docs only say the client must then do a full sync.
NOT_TRACKED = "0x80072491"
EXPIRED = "0x80044352"
ENTITY_METADATA_ID = "608861bc-50a4-4c5f-a02c-21fe1943e2cf"  # contact's MetadataId in every org


@dataclass
class ChangeTracking:
    enabled: bool = True
    # Tokens for versions below this are past the retention period.
    expired_below: int = 0

    def token(self, version: int) -> str:
        # Shaped like Dataverse's ("919042!08/22/2017 08:10:44"); clients pass it back unchanged.
        return f"{version}!{time.strftime('%m/%d/%Y %H:%M:%S', time.gmtime())}"

    @staticmethod
    def version_of(token: str) -> int | None:
        head = token.split("!", 1)[0]
        return int(head) if head.isdigit() else None

    def expire_all(self, new_version: int) -> None:
        """Every token issued before `new_version` (a version no token has yet) is too old."""
        self.expired_below = new_version

    def entity_definition(self) -> dict:
        return {"LogicalName": "contact", "SchemaName": "Contact", "EntitySetName": "contacts",
                "MetadataId": ENTITY_METADATA_ID, "ChangeTrackingEnabled": self.enabled}
