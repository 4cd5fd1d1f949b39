"""Open incidents in the Dagster UI: the `operator_incidents` asset (Assets > operations), whose
latest observation is a table of every open incident with its age and count.

No run is involved: a sensor (operations/sensors.py) reads the `incidents` table once a minute
and reports an observation when the open set changed (and every 10 minutes, so the ages stay fresh). The
`open_incidents` count and `oldest_open_minutes` are plotted on the asset's page.
"""

from __future__ import annotations

from datetime import datetime, timezone

import dagster as dg

from mentor_pipeline import markdown
from mentor_pipeline.operations.store import Incident, describe_age

OPERATOR_INCIDENTS = dg.AssetKey("operator_incidents")

operator_incidents = dg.AssetSpec(
    OPERATOR_INCIDENTS,
    description=(
        "Incidents not yet resolved (table `incidents`): what is wrong, since when, how often. Each alert "
        "opens or updates one; the webhook hears only opening, reminders and resolution. Observed by "
        "operator_incidents_sensor; `select * from open_incidents` shows the same."
    ),
    group_name="operations",
    kinds={"postgres"},
)


def incidents_table(incidents: list[Incident], now: datetime) -> str:
    if not incidents:
        return f"No open incidents (as of {now:%Y-%m-%d %H:%M} UTC)."
    rows = [[i.key, i.state, describe_age(now - i.first_seen), i.occurrences,
             f"{i.first_seen.astimezone(timezone.utc):%Y-%m-%d %H:%M}",
             f"{i.last_seen.astimezone(timezone.utc):%Y-%m-%d %H:%M}", i.reminders_sent, i.summary]
            for i in incidents]
    return f"Open incidents as of {now:%Y-%m-%d %H:%M} UTC:\n\n" + markdown.table(
        ["incident", "state", "open for", "count", "first seen (UTC)", "last seen (UTC)", "reminders",
         "latest summary"], rows, right={"count", "reminders"})


def observation(incidents: list[Incident], now: datetime) -> dg.AssetObservation:
    oldest = min((i.first_seen for i in incidents), default=None)
    return dg.AssetObservation(
        asset_key=OPERATOR_INCIDENTS,
        description=f"{len(incidents)} open incident(s)",
        metadata={
            "open_incidents": dg.MetadataValue.int(len(incidents)),
            "oldest_open_minutes": dg.MetadataValue.float(round((now - oldest).total_seconds() / 60, 1) if oldest else 0.0),
            "incidents": dg.MetadataValue.md(incidents_table(incidents, now)),
        },
    )
