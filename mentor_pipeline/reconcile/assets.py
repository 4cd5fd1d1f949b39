"""Dagster ways into reconciliation and force sync: the nightly `website_reconciliation` asset
and the `force_sync_job` (typed config: mentor ids, exact names or a chapter; dry run). Each is
resources in, one call into `run.py`, metadata out. Both run in the `dynamics` pool with the
website_listing drain."""


import dagster as dg
from pydantic import Field

from mentor_pipeline.alerts import AlertSink
from mentor_pipeline.dynamics.errors import DynamicsAuthError, DynamicsError
from mentor_pipeline.health import check_dynamics_credentials
from mentor_pipeline.reconcile.checks import WEBSITE_RECONCILIATION
from mentor_pipeline.reconcile.report import ReconcileReport
from mentor_pipeline.reconcile.run import force_sync, reconcile
from mentor_pipeline.reconcile.store import InvalidMentorIds
from mentor_pipeline.resources import AppDatabase, DynamicsResource
from mentor_pipeline.sync.assets import DYNAMICS_POOL, SyncSettings, report_metadata as drain_metadata

WEBSITE_LISTING = "website_listing"


@dg.asset(
    name=WEBSITE_RECONCILIATION,
    description=(
        "Nightly reconciliation of website_listing: credential check, read every Dynamics listing, diff it with the "
        "rule (listed flag and chapter; listed contacts whose mentor is gone or has no website sync), re-sync the "
        "divergent mentors through sync_queue and log the run in reconciliation_log."
    ),
    group_name="website_sync",
    owners=["team:hlf-website-sync"],
    kinds={"dynamics365", "postgres"},
    pool=DYNAMICS_POOL,
)
def website_reconciliation(
    context: dg.AssetExecutionContext,
    app_db: AppDatabase,
    dynamics: DynamicsResource,
    alerts: AlertSink,
    sync_settings: SyncSettings,
) -> dg.MaterializeResult:
    if not check_dynamics_credentials(dynamics, alerts, context.log):
        raise dg.Failure(description="Dynamics credential check failed (alert sent); nothing was reconciled.")
    report = _run(alerts, dynamics, lambda client: reconcile(
        app_db.connect, client, alerts=alerts, log=context.log, policy=sync_settings.policy(),
        dagster_run_id=context.run.run_id, time_budget_seconds=sync_settings.time_budget_seconds,
    ))
    context.log.info(" | ".join(report.text_lines()[2:]))
    return dg.MaterializeResult(metadata=report_metadata(report))


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
    report = _run(alerts, dynamics, lambda client: force_sync(
        app_db.connect, client, mentor_ids=config.mentor_ids, mentor_names=config.mentor_names,
        chapter=config.chapter or None, dry_run=config.dry_run, alerts=alerts, log=context.log,
        policy=sync_settings.policy(), dagster_run_id=context.run.run_id,
        time_budget_seconds=sync_settings.time_budget_seconds,
    ))
    context.log.info(" | ".join(report.text_lines()[2:]))
    metadata = report_metadata(report)
    if config.dry_run:
        # Nothing changed on the website: an observation, not a materialisation.
        context.log_event(dg.AssetObservation(asset_key=WEBSITE_LISTING, metadata=metadata))
    else:
        context.log_event(dg.AssetMaterialization(asset_key=WEBSITE_LISTING, metadata=metadata))


@dg.job(
    name="force_sync_job",
    description="Force sync: write the selected mentors' website listing (by id, exact name or chapter) now.",
    executor_def=dg.in_process_executor,
    tags={"mentor_pipeline/dynamics": "force_sync"},
)
def force_sync_job():
    force_sync_op()


def _run(alerts: AlertSink, dynamics: DynamicsResource, action) -> ReconcileReport:
    try:
        with dynamics.open_client() as client:
            report = action(client)
    except InvalidMentorIds as exc:
        raise dg.Failure(description=str(exc)) from None
    except DynamicsAuthError as exc:
        alerts.alert("dynamics_auth_failed", f"website listing run stopped: {exc}")
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
