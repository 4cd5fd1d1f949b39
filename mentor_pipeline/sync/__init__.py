"""Website sync: the sync_queue processor and its Dagster definitions (`definitions.py`).

Reuse from here: `drain_queue` (process what is due), `enqueue` (mark mentors for a
write through the one SQL enqueue function), `desired_listing` (the rule's answer per key), `listing_state` / `record_listing` (what the website
listing is per mentor), `due_summary` (what the sensor sees).
"""

from mentor_pipeline.sync.run import Decision, drain_queue, plan_batch
from mentor_pipeline.sync.store import (
    DueSummary,
    ListingState,
    QueuePolicy,
    QueueRow,
    desired_listing,
    due_summary,
    enqueue,
    listing_state,
    record_listing,
)
from mentor_pipeline.sync.report import DrainReport, RowOutcome

__all__ = [
    "Decision",
    "DrainReport",
    "DueSummary",
    "ListingState",
    "QueuePolicy",
    "QueueRow",
    "RowOutcome",
    "desired_listing",
    "drain_queue",
    "due_summary",
    "enqueue",
    "listing_state",
    "plan_batch",
    "record_listing",
]
