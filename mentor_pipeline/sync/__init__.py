"""Website sync: the sync_queue processor and its Dagster definitions (`definitions.py`).

Reuse from here: `drain_queue` (process what is due), `enqueue` / `enqueue_desired` (queue
writes the way the outbox trigger does), `listing_state` / `record_listing` (what the website
listing is per mentor), `due_summary` (what the sensor sees).
"""

from mentor_pipeline.sync.processor import Decision, drain_queue, plan_batch
from mentor_pipeline.sync.queue import (
    DueSummary,
    ListingState,
    QueuePolicy,
    QueueRow,
    desired_listing,
    due_summary,
    enqueue,
    enqueue_desired,
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
    "enqueue_desired",
    "listing_state",
    "plan_batch",
    "record_listing",
]
