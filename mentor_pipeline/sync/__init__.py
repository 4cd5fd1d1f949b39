"""Website sync: the sync_queue drain and its Dagster definitions (`definitions.py`).

Reuse from here: `Drain` (process what is due: `Drain(connect, client, ...).run()`), `enqueue` (mark mentors for a
write through the one SQL enqueue function), `desired_listing` (the rule's answer per key), `listing_state` (what
the website listing is per mentor, as last confirmed), `tick` (the clock tick: marks lapsed certifications, then
counts what is due; what the sensor sees).
"""

from mentor_pipeline.sync.report import DrainReport, RowOutcome
from mentor_pipeline.sync.run import Decision, Drain, plan_batch
from mentor_pipeline.sync.store import (
    DueSummary,
    ListingState,
    QueuePolicy,
    QueueRow,
    desired_listing,
    enqueue,
    listing_state,
    tick,
)

__all__ = [
    "Decision",
    "Drain",
    "DrainReport",
    "DueSummary",
    "ListingState",
    "QueuePolicy",
    "QueueRow",
    "RowOutcome",
    "desired_listing",
    "enqueue",
    "listing_state",
    "plan_batch",
    "tick",
]
