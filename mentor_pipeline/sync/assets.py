"""The `website_listing` asset: what HLF's public website lists. Materialising it drains
sync_queue into Dynamics (the sensor does it within seconds of a change; the UI's "Materialize"
does the same). Force sync and the nightly reconciliation are jobs of their own in
`mentor_pipeline/reconcile/`. Every path that calls Dynamics runs in the `dynamics` pool.
"""


import dagster as dg

from mentor_pipeline.operations import liveness
from mentor_pipeline.operations.alerts import AlertSink
from mentor_pipeline.operations.store import RUN_FAILURE_INCIDENT_KEY
from mentor_pipeline.resources import WEBSITE_SYNC_ASSET, AppDatabase, DynamicsResource, SyncSettings
from mentor_pipeline.sync.report import DrainReport

WEBSITE_SYNC_JOB = "website_sync_job"

@dg.asset(
    name="website_listing",
    description=(
        "HLF's public chapter website listing in Dynamics 365 (contact.hlf_websitelisted and hlf_chaptername per "
        "mentor). Materialising it writes every due change of sync_queue: for each marked mentor, what the rule "
        "(website_listing_rule in SQL) says at the moment of writing. The confirmed state per mentor is in "
        "website_listing_state. Power Pages shows a Dataverse change within 15 minutes of the write."
    ),
    **WEBSITE_SYNC_ASSET,
)
def website_listing(
    context: dg.AssetExecutionContext,
    app_db: AppDatabase,
    dynamics: DynamicsResource,
    alerts: AlertSink,
    sync_settings: SyncSettings,
) -> dg.MaterializeResult:
    return materialize_result(drain(context, app_db, dynamics, alerts, sync_settings))


def drain(context, app_db: AppDatabase, dynamics: DynamicsResource, alerts: AlertSink,
          sync_settings: SyncSettings) -> DrainReport:
    """Drain the queue into Dynamics; fails the run (after alerting) on an auth failure."""
    with liveness.beating_for(context, app_db), dynamics.open_client() as client:
        report = sync_settings.drain(app_db.connect, client, alerts=alerts, log=context.log).run(
            time_budget_seconds=sync_settings.time_budget_seconds,
            linger_seconds=sync_settings.linger_seconds,
            poll_interval_seconds=sync_settings.poll_interval_seconds,
        )
    if report.auth_error:
        raise dg.Failure(
            description=f"Dynamics authentication failed; every claimed change was put back as pending: {report.auth_error}",
            # The failure belongs to that incident (already alerted): run_failure_alert_sensor
            # counts it there instead of opening run_failed as well.
            metadata={**report_metadata(report), RUN_FAILURE_INCIDENT_KEY: dg.MetadataValue.text(report.auth_incident or "")},
        )
    return report


def report_metadata(report: DrainReport) -> dict[str, dg.MetadataValue]:
    lag = report.lag_percentiles()
    metadata: dict[str, dg.MetadataValue] = {
        "applied": dg.MetadataValue.int(report.applied),
        "skipped_superseded": dg.MetadataValue.int(report.superseded),
        "retried": dg.MetadataValue.int(report.retried),
        "dead": dg.MetadataValue.int(report.dead),
        "released": dg.MetadataValue.int(report.released),
        "batches": dg.MetadataValue.int(report.batches),
        "rate_limit_waits": dg.MetadataValue.int(report.rate_limit_waits),
        "duration_seconds": dg.MetadataValue.float(round(report.seconds, 3)),
        "changes": dg.MetadataValue.md(report.changes_markdown()),
    }
    for name, value in lag.items():
        if value is not None:
            metadata[f"lag_{name}_seconds"] = dg.MetadataValue.float(round(value, 3))
    if report.stopped_reason:
        metadata["stopped_reason"] = dg.MetadataValue.text(report.stopped_reason)
    return metadata


def materialize_result(report: DrainReport) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata=report_metadata(report))
