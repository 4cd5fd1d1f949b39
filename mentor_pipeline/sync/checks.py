"""The freshness promise as an asset check on `website_listing`, evaluated continuously.

`website_sync_health_sensor` evaluates it every minute without a run (a runless
`AssetCheckEvaluation`, which the asset's Checks tab shows and whose `oldest_due_change_minutes`
the UI plots), raises or resolves `website_stale`, and also looks for an outage between drains
(`dynamics_unreachable`, mentor_pipeline/sync/outage.py). The same check can be executed by hand
from the UI, and runs after a "Materialize" of website_listing.
"""

from __future__ import annotations

import json
import time

import dagster as dg

from mentor_pipeline.alerts import AlertSink
from mentor_pipeline.settings import FRESHNESS_MINUTES
from mentor_pipeline.resources import AppDatabase
from mentor_pipeline.sync.assets import SyncSettings, website_listing
from mentor_pipeline.sync.freshness import Freshness, check_freshness
from mentor_pipeline.sync.outage import alert_if_unreachable

FRESHNESS_CHECK = "no_due_change_waits_too_long"
# While nothing waits and nothing changed, one evaluation every this often keeps the plot going.
IDLE_REPORT_SECONDS = 600


def _metadata(result: Freshness) -> dict[str, dg.MetadataValue]:
    return {
        "oldest_due_change_minutes": dg.MetadataValue.float(round(result.oldest_age.total_seconds() / 60, 2)),
        "waiting_changes": dg.MetadataValue.int(result.waiting),
        "late_changes": dg.MetadataValue.int(result.late),
        "limit_minutes": dg.MetadataValue.float(result.limit.total_seconds() / 60),
    }


def evaluation(result: Freshness) -> dg.AssetCheckEvaluation:
    return dg.AssetCheckEvaluation(
        asset_key=website_listing.key,
        check_name=FRESHNESS_CHECK,
        passed=result.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=result.summary(),
        metadata=_metadata(result),
    )


@dg.asset_check(
    asset=website_listing,
    name=FRESHNESS_CHECK,
    description=f"The freshness promise: no due change waits longer than {FRESHNESS_MINUTES.name} minutes (default "
                f"{FRESHNESS_MINUTES.default:g}) to be written to Dynamics. Evaluated every minute by "
                "website_sync_health_sensor; a breach opens the incident website_stale. Metadata "
                "oldest_due_change_minutes is the age of the oldest waiting change.",
)
def no_due_change_waits_too_long(app_db: AppDatabase, alerts: AlertSink,
                                 sync_settings: SyncSettings) -> dg.AssetCheckResult:
    with app_db.connect(autocommit=True) as conn:
        result = check_freshness(conn, alerts, sync_settings.freshness_limit())
    return dg.AssetCheckResult(passed=result.passed, severity=dg.AssetCheckSeverity.ERROR,
                               description=result.summary(), metadata=_metadata(result))


@dg.sensor(
    name="website_sync_health_sensor",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every minute, without a run: evaluates website_listing's freshness check "
                f"({FRESHNESS_CHECK}; incident website_stale) and whether writes to Dynamics have been failing "
                "for longer than the bound (incident dynamics_unreachable).",
)
def website_sync_health_sensor(context: dg.SensorEvaluationContext, app_db: AppDatabase, alerts: AlertSink,
                               sync_settings: SyncSettings):
    with app_db.connect(autocommit=True) as conn:
        result = check_freshness(conn, alerts, sync_settings.freshness_limit())
        alert_if_unreachable(conn, alerts, sync_settings.stall_bound())
    previous = json.loads(context.cursor) if context.cursor else {}
    now = time.time()
    quiet = (not result.waiting and previous.get("passed") is True
             and now - previous.get("reported_at", 0) < IDLE_REPORT_SECONDS)
    if quiet:
        return dg.SkipReason(result.summary())
    return dg.SensorResult(asset_events=[evaluation(result)],
                           cursor=json.dumps({"passed": result.passed, "reported_at": now}))
