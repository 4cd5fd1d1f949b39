"""The `dynamics_drift` asset: what Dynamics showed differently from the rule at each look of
the drift watch. Materialising it is one look (`mentor_pipeline.drift.run.look`); the sensor
does that every few minutes. In the `dynamics` pool, like every step that calls Dataverse."""


import dagster as dg

from mentor_pipeline.drift.report import LookReport
from mentor_pipeline.drift.run import look
from mentor_pipeline.dynamics.errors import DynamicsAuthError, DynamicsConfigError
from mentor_pipeline.operations import liveness
from mentor_pipeline.operations.alerts import AlertSink
from mentor_pipeline.operations.store import RUN_FAILURE_INCIDENT_KEY
from mentor_pipeline.resources import WEBSITE_SYNC_ASSET, AppDatabase, DynamicsResource
from mentor_pipeline.vocabulary import incident_kind_for

TRACKING_CHECK = "change_tracking_readable"
FIGHT_CHECK = "no_contact_fights_the_pipeline"


@dg.asset(
    name="dynamics_drift",
    description=(
        "Drift found in Dynamics per look of the drift watch: contacts changed behind the pipeline's back (by hand, a "
        "flow, an import, a restore) that differ from the rule (website_listing_rule: listed flag and chapter), read "
        "through Dataverse change tracking since the delta token kept in dynamics_change_tracking. Divergent mentors "
        "are marked in sync_queue (triggered_by_event dynamics_drift) and the drain puts them right; every finding "
        "is a row of dynamics_drift."
    ),
    **WEBSITE_SYNC_ASSET,
    check_specs=[
        dg.AssetCheckSpec(TRACKING_CHECK, asset="dynamics_drift",
                          description="Dataverse answered the delta read: change tracking is on for the contact table."),
        dg.AssetCheckSpec(FIGHT_CHECK, asset="dynamics_drift",
                          description="No contact keeps being changed back after the pipeline's bounded corrections."),
    ],
)
def dynamics_drift(context: dg.AssetExecutionContext, app_db: AppDatabase, dynamics: DynamicsResource,
                   alerts: AlertSink):
    try:
        with liveness.beating_for(context, app_db), dynamics.open_client() as client:
            report = look(app_db.connect, client, alerts=alerts, log=context.log)
    except (DynamicsAuthError, DynamicsConfigError) as exc:
        # The sign-in incident the drain and the credential checks raise too; the failed run
        # counts there (run_failure_alert_sensor), not as run_failed on top.
        kind = incident_kind_for(exc)
        alerts.alert(kind, str(exc))
        raise dg.Failure(description=f"the drift watch could not sign in to Dynamics: {exc}",
                         metadata={RUN_FAILURE_INCIDENT_KEY: dg.MetadataValue.text(kind.value)}) from None
    yield dg.MaterializeResult(metadata=report_metadata(report))
    yield dg.AssetCheckResult(
        check_name=TRACKING_CHECK, passed=report.tracking_off is None, severity=dg.AssetCheckSeverity.ERROR,
        metadata={"problem": dg.MetadataValue.text(report.tracking_off or "none")})
    fights = [row for row in report.drift if row["action"] == "fighting"]
    yield dg.AssetCheckResult(
        check_name=FIGHT_CHECK, passed=not fights, severity=dg.AssetCheckSeverity.WARN,
        metadata={"fighting": dg.MetadataValue.int(len(fights)),
                  "contacts": dg.MetadataValue.text(", ".join(str(row["contactid"]) for row in fights[:20]) or "none")})


def report_metadata(report: LookReport) -> dict[str, dg.MetadataValue]:
    metadata: dict[str, dg.MetadataValue] = {name: dg.MetadataValue.int(value) for name, value in report.counts().items()}
    metadata["read"] = dg.MetadataValue.text("full" if report.full_read else "delta")
    metadata["token_expired"] = dg.MetadataValue.bool(report.token_expired)
    metadata["duration_seconds"] = dg.MetadataValue.float(round(report.seconds, 3))
    metadata["drift"] = dg.MetadataValue.md(report.drift_markdown())
    if report.tracking_off:
        metadata["tracking_off"] = dg.MetadataValue.text(report.tracking_off)
    return metadata
