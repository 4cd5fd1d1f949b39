"""The `website_listing` asset: what HLF's public website lists. Materialising it drains
sync_queue into Dynamics (the sensor does it within seconds of a change; the UI's "Materialize"
does the same). Force sync and the nightly reconciliation are jobs of their own in
`mentor_pipeline/reconcile/`. Every path that calls Dynamics runs in the `dynamics` pool.
"""


import os
from datetime import timedelta

import dagster as dg

from mentor_pipeline import settings as environment
from mentor_pipeline.operations import liveness
from mentor_pipeline.operations.alerts import AlertSink
from mentor_pipeline.operations.store import RUN_FAILURE_INCIDENT_KEY
from mentor_pipeline.resources import DYNAMICS_POOL, AppDatabase, DynamicsResource
from mentor_pipeline.sync.run import POLL_INTERVAL_SECONDS, drain_queue
from mentor_pipeline.sync.store import QueuePolicy
from mentor_pipeline.sync.report import DrainReport

WEBSITE_SYNC_JOB = "website_sync_job"

_POLICY = QueuePolicy()


class SyncSettings(dg.ConfigurableResource):
    """The processor's claim/lease/retry policy (defaults: mentor_pipeline.sync.store.QueuePolicy)
    and the sync's alerting bounds (defaults and variables: mentor_pipeline/settings.py)."""

    batch_size: int = _POLICY.batch_size
    lease_seconds: float = _POLICY.lease.total_seconds()
    max_attempts: int = _POLICY.max_attempts
    backoff_base_seconds: float = _POLICY.backoff_base.total_seconds()
    backoff_max_seconds: float = _POLICY.backoff_max.total_seconds()
    # One run drains what is due, but hands over to the next sensor-started run after this long.
    time_budget_seconds: float = 600.0
    # A run stays warm this long after its last batch: changes arriving meanwhile are written
    # within a second, without a new run's launch (several seconds on a small machine).
    linger_seconds: float = 30.0
    poll_interval_seconds: float = POLL_INTERVAL_SECONDS
    # Dataverse unreachable (5xx, timeouts) or throttling waits added up for longer than this
    # opens dynamics_unreachable / dynamics_throttled (mentor_pipeline/sync/health.py).
    stall_alert_minutes: float = environment.STALL_ALERT_MINUTES.default
    # The freshness promise: no due change waits longer than this (mentor_pipeline/sync/health.py).
    freshness_minutes: float = environment.FRESHNESS_MINUTES.default
    # While a sign-in incident is open, the sensor starts no drain and re-checks the credentials
    # (WhoAmI) this often.
    credential_check_minutes: float = environment.CREDENTIAL_CHECK_MINUTES.default

    def policy(self) -> QueuePolicy:
        return QueuePolicy(
            batch_size=self.batch_size,
            lease=timedelta(seconds=self.lease_seconds),
            max_attempts=self.max_attempts,
            backoff_base=timedelta(seconds=self.backoff_base_seconds),
            backoff_max=timedelta(seconds=self.backoff_max_seconds),
        )

    def stall_bound(self) -> timedelta:
        return timedelta(minutes=self.stall_alert_minutes)

    def freshness_limit(self) -> timedelta:
        return timedelta(minutes=self.freshness_minutes)

    def credential_check_interval(self) -> timedelta:
        return timedelta(minutes=self.credential_check_minutes)


# Operators tune the alerting bounds through the environment of the Dagster processes.
SYNC_SETTINGS_ENV = {
    "stall_alert_minutes": environment.STALL_ALERT_MINUTES,
    "freshness_minutes": environment.FRESHNESS_MINUTES,
    "credential_check_minutes": environment.CREDENTIAL_CHECK_MINUTES,
}


def sync_settings_from_env(environ=os.environ) -> SyncSettings:
    """SyncSettings with the bounds the environment sets (minutes, fractions allowed); a value
    that is not a positive number stops the code location with one line naming it. The Dagster
    resource and the break-glass CLI both read their settings here."""
    values = {}
    for field, variable in SYNC_SETTINGS_ENV.items():
        raw = environ.get(variable.name, "").strip()
        if not raw:
            continue
        try:
            values[field] = float(raw)
        except ValueError:
            values[field] = -1.0
        if not values[field] > 0:
            raise ValueError(f"{variable.name} must be a positive number of minutes, e.g. {variable.default:g} "
                             f"(got {raw!r}): fix it in the Dagster processes' environment")
    return SyncSettings(**values)


@dg.asset(
    name="website_listing",
    description=(
        "HLF's public chapter website listing in Dynamics 365 (contact.hlf_websitelisted and hlf_chaptername per "
        "mentor). Materialising it writes every due change of sync_queue: for each marked mentor, what the rule "
        "(website_listing_rule in SQL) says at the moment of writing. The confirmed state per mentor is in "
        "website_listing_state. Power Pages shows a Dataverse change within 15 minutes of the write."
    ),
    group_name="website_sync",
    owners=["team:hlf-website-sync"],
    kinds={"dynamics365", "postgres"},
    pool=DYNAMICS_POOL,
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
        report = drain_queue(
            app_db.connect, client, alerts=alerts, log=context.log, policy=sync_settings.policy(),
            time_budget_seconds=sync_settings.time_budget_seconds,
            linger_seconds=sync_settings.linger_seconds,
            poll_interval_seconds=sync_settings.poll_interval_seconds,
            stall_bound=sync_settings.stall_bound(),
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
