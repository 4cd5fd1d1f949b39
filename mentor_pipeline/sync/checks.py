"""The freshness promise as an asset check on `website_listing`, evaluated continuously.

`website_sync_health_sensor` (sync/sensors.py) evaluates it every minute without a run (a runless
`AssetCheckEvaluation`, which the asset's Checks tab shows and whose `oldest_due_change_minutes`
the UI plots), raises or resolves `website_stale`, and also looks for an outage between drains
(`dynamics_unreachable`, mentor_pipeline/sync/health.py). The same check can be executed by hand
from the UI, and runs after a "Materialize" of website_listing.
"""

from __future__ import annotations

import dagster as dg

from mentor_pipeline.operations.alerts import AlertSink
from mentor_pipeline.resources import AppDatabase, SyncSettings
from mentor_pipeline.settings import FRESHNESS_MINUTES
from mentor_pipeline.sync.assets import website_listing
from mentor_pipeline.sync.health import Freshness, check_freshness

FRESHNESS_CHECK = "no_due_change_waits_too_long"


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
