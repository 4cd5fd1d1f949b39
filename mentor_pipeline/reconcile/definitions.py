"""Reconciliation domain: the nightly `website_reconciliation` asset with its checks, job and
schedule, and the force sync job. Needs the shared `app_db`, `dynamics`, `alerts` and the sync
domain's `sync_settings`.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

import dagster as dg

from mentor_pipeline.reconcile.assets import force_sync_job, website_reconciliation
from mentor_pipeline.reconcile.checks import reconciliation_checks

NIGHTLY_RECONCILIATION_JOB = "nightly_reconciliation_job"

OSLO = "Europe/Oslo"

nightly_reconciliation_job = dg.define_asset_job(
    NIGHTLY_RECONCILIATION_JOB,
    selection=dg.AssetSelection.assets(website_reconciliation),  # with its checks
    description="Nightly reconciliation: credential check, read every Dynamics listing, diff with the app, "
                "re-sync divergent mentors through sync_queue, log the run, then the asset checks.",
    executor_def=dg.in_process_executor,
    # Shares the Dataverse service-protection budget with the other Dynamics jobs (dagster.yaml).
    # `tags`, not `run_tags`: a run launched from the UI or GraphQL carries only the job's tags.
    tags={"mentor_pipeline/dynamics": "reconciliation"},
)


@dg.schedule(
    name="nightly_reconciliation_schedule",
    cron_schedule="0 3 * * *",
    execution_timezone=OSLO,
    job=nightly_reconciliation_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every night at 03:00 Oslo time, an hour after nightly_expiry_job (02:00) queued its removals.",
)
def nightly_reconciliation_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    # The scheduled time, not the evaluation time: a late tick still reconciles the night it was for.
    night = context.scheduled_execution_time.astimezone(ZoneInfo(OSLO)).date()
    return dg.RunRequest(run_key=f"nightly_reconciliation:{night.isoformat()}",
                         tags={"mentor_pipeline/night": night.isoformat()})


defs = dg.Definitions(
    assets=[website_reconciliation],
    jobs=[nightly_reconciliation_job, force_sync_job],
    schedules=[nightly_reconciliation_schedule],
    asset_checks=reconciliation_checks,
)
