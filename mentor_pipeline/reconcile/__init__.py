"""Nightly reconciliation and force sync: plain Python here, Dagster in `definitions.py`.

Reuse from here: `reconcile` / `force_sync` (run either, dry or not), `diff_listings` (the pure
classification), `InvalidMentorIds` (what force sync raises for bad ids), `duplicates` (the
compensation query), `ReconcileReport`.
"""

from mentor_pipeline.reconcile.diff import CLASSIFICATIONS, actual_frame, app_frame, diff_listings
from mentor_pipeline.reconcile.report import ReconcileReport
from mentor_pipeline.reconcile.run import force_sync, reconcile
from mentor_pipeline.reconcile.store import InvalidMentorIds, duplicates, unresolved_dead_rows

__all__ = [
    "CLASSIFICATIONS",
    "InvalidMentorIds",
    "ReconcileReport",
    "actual_frame",
    "app_frame",
    "diff_listings",
    "duplicates",
    "force_sync",
    "reconcile",
    "unresolved_dead_rows",
]
