"""The `website_listing` asset's reconciliation and force-sync branches (called from
`mentor_pipeline/sync/assets.py`): resources in, one call into `run.py`, metadata out."""

from __future__ import annotations

import dagster as dg

from mentor_pipeline.dynamics.errors import DynamicsAuthError, DynamicsError
from mentor_pipeline.health import check_dynamics_credentials
from mentor_pipeline.reconcile.report import ReconcileReport
from mentor_pipeline.reconcile.run import force_sync, reconcile
from mentor_pipeline.reconcile.store import InvalidMentorIds


def materialize_reconciliation(context, config, app_db, dynamics, alerts, sync_settings) -> dg.MaterializeResult:
    """Nightly reconciliation: the credential check first (alerts at once), then `reconcile`."""
    if not check_dynamics_credentials(dynamics, alerts, context.log):
        raise dg.Failure(description="Dynamics credential check failed (alert sent); nothing was reconciled.")
    return _run(context, alerts, lambda client: reconcile(
        app_db.connect, client, alerts=alerts, log=context.log, policy=sync_settings.policy(),
        mentor_ids=config.mentor_ids or None, dry_run=config.dry_run, dagster_run_id=context.run.run_id,
        time_budget_seconds=sync_settings.time_budget_seconds,
    ), dynamics)


def materialize_force_sync(context, config, app_db, dynamics, alerts, sync_settings) -> dg.MaterializeResult:
    """Force sync from the UI: every HLF mentor, or only `config.mentor_ids`; `dry_run` writes nothing."""
    return _run(context, alerts, lambda client: force_sync(
        app_db.connect, client, mentor_ids=config.mentor_ids or None, dry_run=config.dry_run, alerts=alerts,
        log=context.log, policy=sync_settings.policy(), dagster_run_id=context.run.run_id,
        time_budget_seconds=sync_settings.time_budget_seconds,
    ), dynamics)


def _run(context, alerts, action, dynamics) -> dg.MaterializeResult:
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
    metadata = report_metadata(report)
    if report.drain is not None and report.drain.auth_error:
        raise dg.Failure(
            description=f"Dynamics authentication failed while writing; queued changes stay pending: {report.drain.auth_error}",
            metadata=metadata,
        )
    context.log.info(" | ".join(report.text_lines()[2:]))
    return dg.MaterializeResult(metadata=metadata)


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
    metadata["differences"] = dg.MetadataValue.md(report.changes_markdown())
    if report.run_id is not None:
        metadata["reconciliation_run_id"] = dg.MetadataValue.text(str(report.run_id))
    if report.drain is not None:
        from mentor_pipeline.sync.assets import report_metadata as drain_metadata  # the sync asset's own fields

        for name, value in drain_metadata(report.drain).items():
            metadata.setdefault(name, value)
    return metadata
