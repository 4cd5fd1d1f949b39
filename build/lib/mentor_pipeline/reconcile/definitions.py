"""Reconciliation domain: the nightly `website_reconciliation` asset (one Oslo night per
partition) with its checks, job and automation, and the force sync job. Needs the shared
`app_db`, `dynamics`, `alerts`, the sync domain's `sync_settings`, and the expiry domain's
`expired_cert_transitions` upstream.
"""

from __future__ import annotations

import dagster as dg

from mentor_pipeline.reconcile.assets import force_sync_job, website_reconciliation
from mentor_pipeline.reconcile.checks import reconciliation_checks

NIGHTLY_RECONCILIATION_JOB = "nightly_reconciliation_job"
# Shares the Dataverse service-protection budget with the other Dynamics jobs (dagster.yaml).
DYNAMICS_TAGS = {"mentor_pipeline/dynamics": "reconciliation"}

nightly_reconciliation_job = dg.define_asset_job(
    NIGHTLY_RECONCILIATION_JOB,
    selection=dg.AssetSelection.assets(website_reconciliation),  # with its checks
    description="Reconciliation of one night (the partition), launched by hand or as a backfill: credential check, "
                "read every Dynamics listing, diff with the app, re-sync divergent mentors through sync_queue, "
                "log the run, then the asset checks.",
    executor_def=dg.in_process_executor,
    # `tags`, not `run_tags`: a run launched from the UI or GraphQL carries only the job's tags.
    tags=DYNAMICS_TAGS,
)

# Evaluates website_reconciliation's automation condition (reconcile.assets.NIGHTLY): each
# night's run starts after that night's expiry transitions, or at the 05:00 deadline without them.
nightly_reconciliation_automation = dg.AutomationConditionSensorDefinition(
    "nightly_reconciliation_automation",
    target=dg.AssetSelection.assets(website_reconciliation),
    run_tags=DYNAMICS_TAGS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Starts the night's website_reconciliation once that night's expired_cert_transitions is "
                "materialised, or at 05:00 Oslo if the night has not been reconciled by then.",
)

defs = dg.Definitions(
    assets=[website_reconciliation],
    jobs=[nightly_reconciliation_job, force_sync_job],
    sensors=[nightly_reconciliation_automation],
    asset_checks=reconciliation_checks,
)
