"""Reconciliation's jobs: one night's reconciliation (by hand or as a backfill) and force sync."""

from __future__ import annotations

import dagster as dg

from mentor_pipeline.reconcile.assets import force_sync_op, website_reconciliation
from mentor_pipeline.resources import dynamics_run_tags

NIGHTLY_RECONCILIATION_JOB = "nightly_reconciliation_job"
RECONCILIATION_TAGS = dynamics_run_tags("reconciliation")

nightly_reconciliation_job = dg.define_asset_job(
    NIGHTLY_RECONCILIATION_JOB,
    selection=dg.AssetSelection.assets(website_reconciliation),  # with its checks
    description="Reconciliation of one night (the partition), launched by hand or as a backfill: credential check, "
                "read every Dynamics listing, diff with the app, re-sync divergent mentors through sync_queue, "
                "log the run, then the asset checks.",
    executor_def=dg.in_process_executor,
    tags=RECONCILIATION_TAGS,
)


@dg.job(
    name="force_sync_job",
    description="Force sync: write the selected mentors' website listing (by id, exact name or chapter) now.",
    executor_def=dg.in_process_executor,
    tags=dynamics_run_tags("force_sync"),
)
def force_sync_job():
    force_sync_op()
