"""Dagster ways into reconciliation and force sync: the nightly `website_reconciliation` asset
(one Oslo night per partition, started by that night's expiry or by a deadline) and the
`force_sync_job` (typed config: mentor ids, exact names or a chapter; dry run). Each is
resources in, one call into `run.py`, metadata out. Both run in the `dynamics` pool with the
website_listing drain."""


import dagster as dg
from pydantic import Field

from mentor_pipeline.drift import store as drift_store
from mentor_pipeline.dynamics.errors import DynamicsAuthError, DynamicsError
from mentor_pipeline.expiry.assets import expired_cert_transitions
from mentor_pipeline.nights import NIGHTS
from mentor_pipeline.timezone import OSLO_TZ
from mentor_pipeline.operations import liveness
from mentor_pipeline.operations.alerts import AlertSink
from mentor_pipeline.reconcile.checks import (
    DYNAMICS_CREDENTIALS,
    WEBSITE_RECONCILIATION,
    check_dynamics_credentials_first,
)
from mentor_pipeline.reconcile.report import ReconcileReport
from mentor_pipeline.reconcile.run import force_sync, reconcile
from mentor_pipeline.reconcile.store import InvalidMentorIds
from mentor_pipeline.resources import DYNAMICS_POOL, WEBSITE_SYNC_ASSET, AppDatabase, DynamicsResource, SyncSettings
from mentor_pipeline.sync.assets import report_metadata as drain_metadata
from mentor_pipeline.vocabulary import incident_kind_for

WEBSITE_LISTING = "website_listing"
DEADLINE_CRON = "0 5 * * *"  # 05:00 Oslo: the night is reconciled by then, with or without its expiry

# When a night is reconciled. Only tonight's partition (in_latest_time_window): a backfilled
# expiry of an older night does not start a reconciliation of its own.
AFTER_EXPIRY = dg.AutomationCondition.eager().with_label("after that night's expired_cert_transitions")
BY_DEADLINE = (
    dg.AutomationCondition.in_latest_time_window()
    & dg.AutomationCondition.cron_tick_passed(DEADLINE_CRON, OSLO_TZ).since_last_handled()
    & dg.AutomationCondition.missing()
    & ~dg.AutomationCondition.in_progress()
).with_label("by 05:00 Oslo if the night is not reconciled yet")
NIGHTLY = (AFTER_EXPIRY | BY_DEADLINE).with_label("after the night's expiry, or by 05:00 Oslo without it")


@dg.asset(
    name=WEBSITE_RECONCILIATION,
    deps=[expired_cert_transitions],
    partitions_def=NIGHTS,
    automation_condition=NIGHTLY,
    check_specs=[DYNAMICS_CREDENTIALS],
    description=(
        "Nightly reconciliation of website_listing: credential check, read every Dynamics listing, diff it with the "
        "rule (listed flag and chapter; listed contacts whose mentor is gone or has no website sync), re-sync the "
        "divergent mentors through sync_queue and log the run in reconciliation_log. Starts when the night's "
        "expired_cert_transitions is materialised, or at 05:00 Oslo without it (metadata `ran_after_expiry`)."
    ),
    **WEBSITE_SYNC_ASSET,
)
def website_reconciliation(
    context: dg.AssetExecutionContext,
    app_db: AppDatabase,
    dynamics: DynamicsResource,
    alerts: AlertSink,
    sync_settings: SyncSettings,
):
    credentials = check_dynamics_credentials_first(dynamics, alerts, context.log)
    yield credentials
    if not credentials.passed:
        raise dg.Failure(description=f"{credentials.description} Nothing was reconciled.")
    expiry = night_expiry_metadata(context)
    with liveness.beating_for(context, app_db):
        report = _run(alerts, dynamics, lambda client: reconcile(
            sync_settings.drain(app_db.connect, client, alerts=alerts, log=context.log),
            dagster_run_id=context.run.run_id, time_budget_seconds=sync_settings.time_budget_seconds,
        ))
    context.log.info(" | ".join(report.text_lines()[2:]))
    with app_db.connect(autocommit=True) as conn:
        # Beside what the night found: what the drift watch put right since the last night.
        watch = {name: dg.MetadataValue.int(n) for name, n in drift_store.day_summary(conn).items()}
    yield dg.MaterializeResult(metadata={**expiry, **report_metadata(report), **watch})


def night_expiry_metadata(context: dg.AssetExecutionContext) -> dict[str, dg.MetadataValue]:
    """Whether the night's transitions were in before this reconciliation (they queue the night's removals)."""
    night = context.partition_key
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=expired_cert_transitions.key, asset_partitions=[night]), limit=1,
    ).records
    if not records:
        context.log.warning(f"night {night}: reconciling without that night's expiry (expired_cert_transitions "
                            "is not materialised for it); its lapsed certifications are removed when it runs")
        return {"ran_after_expiry": dg.MetadataValue.bool(False),
                "expiry": dg.MetadataValue.text(f"ran without night {night}'s expiry (not materialised)")}
    return {"ran_after_expiry": dg.MetadataValue.bool(True),
            "expiry": dg.MetadataValue.text(f"after night {night}'s expired_cert_transitions (run {records[0].run_id})")}


class ForceSyncConfig(dg.Config):
    mentor_ids: list[str] = Field(default=[], description="Mentor ids (UUIDs) to write now.")
    mentor_names: list[str] = Field(default=[], description="Exact full names, e.g. 'Ingrid Hansen'.")
    chapter: str = Field(default="", description="Every mentor of this chapter, e.g. 'Oslo'.")
    dry_run: bool = Field(default=False, description="Read Dynamics and list every write, writing nothing "
                                                     "(no queue rows, no Dynamics writes).")


@dg.op(
    name="force_sync",
    description="Write what the rule says for the selected HLF mentors (all of them when nothing is selected) to "
                "Dynamics now. A selection that names no HLF mentor fails the run before anything is written.",
    pool=DYNAMICS_POOL,
)
def force_sync_op(
    context: dg.OpExecutionContext,
    config: ForceSyncConfig,
    app_db: AppDatabase,
    dynamics: DynamicsResource,
    alerts: AlertSink,
    sync_settings: SyncSettings,
) -> None:
    with liveness.beating_for(context, app_db):
        report = _run(alerts, dynamics, lambda client: force_sync(
            sync_settings.drain(app_db.connect, client, alerts=alerts, log=context.log),
            mentor_ids=config.mentor_ids, mentor_names=config.mentor_names, chapter=config.chapter or None,
            dry_run=config.dry_run, dagster_run_id=context.run.run_id,
            time_budget_seconds=sync_settings.time_budget_seconds,
        ))
    context.log.info(" | ".join(report.text_lines()[2:]))
    metadata = report_metadata(report)
    if config.dry_run:
        # Nothing changed on the website: an observation, not a materialisation.
        context.log_event(dg.AssetObservation(asset_key=WEBSITE_LISTING, metadata=metadata))
    else:
        context.log_event(dg.AssetMaterialization(asset_key=WEBSITE_LISTING, metadata=metadata))


def _run(alerts: AlertSink, dynamics: DynamicsResource, action) -> ReconcileReport:
    try:
        with dynamics.open_client() as client:
            report = action(client)
    except InvalidMentorIds as exc:
        raise dg.Failure(description=str(exc)) from None
    except DynamicsAuthError as exc:
        alerts.alert(incident_kind_for(exc), f"website listing run stopped: {exc}")
        raise dg.Failure(description=f"Dynamics authentication failed: {exc}") from None
    except DynamicsError as exc:
        raise dg.Failure(description=f"Dynamics could not be read: {exc}") from None
    if report.drain is not None and report.drain.auth_error:
        raise dg.Failure(
            description=f"Dynamics authentication failed while writing; queued changes stay pending: {report.drain.auth_error}",
            metadata=report_metadata(report),
        )
    return report


def report_metadata(report: ReconcileReport) -> dict[str, dg.MetadataValue]:
    metadata: dict[str, dg.MetadataValue] = {
        "mode": dg.MetadataValue.text(f"{report.kind}{' (dry run)' if report.dry_run else ''}"),
        "dry_run": dg.MetadataValue.bool(report.dry_run),
    }
    for name, value in report.summary().items():
        if isinstance(value, bool) or value is None:
            continue
        metadata[name] = dg.MetadataValue.int(value) if isinstance(value, int) else dg.MetadataValue.float(float(value))
    metadata["classification_counts"] = dg.MetadataValue.md(report.counts_markdown())
    metadata["differences" if report.kind == "reconciliation" else "writes"] = dg.MetadataValue.md(report.changes_markdown())
    if report.run_id is not None:
        metadata["reconciliation_run_id"] = dg.MetadataValue.text(str(report.run_id))
    if report.drain is not None:
        for name, value in drain_metadata(report.drain).items():
            metadata.setdefault(name, value)
    return metadata
