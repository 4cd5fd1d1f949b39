"""Asset checks on `website_reconciliation`. `dynamics_credentials` comes first, from the
reconciliation step itself (WhoAmI: nothing is read or written with bad credentials); the others
run after each reconciliation and are cheap reads of the database, never of Dynamics. The
reconciliation run itself raises the alerts; a failed check is what the UI shows until someone
fixes the cause."""

from __future__ import annotations

import dagster as dg

from mentor_pipeline import markdown
from mentor_pipeline.operations.alerts import AlertSink
from mentor_pipeline.operations.health import dynamics_credential_problem
from mentor_pipeline.reconcile import store
from mentor_pipeline.resources import AppDatabase, DynamicsResource

WEBSITE_RECONCILIATION = "website_reconciliation"

DEAD_ROW_GRACE_SECONDS = 24 * 3600
TABLE_LIMIT = 20


DYNAMICS_CREDENTIALS = dg.AssetCheckSpec(
    "dynamics_credentials",
    asset=WEBSITE_RECONCILIATION,
    description="Before anything is read: the pipeline can sign in to Dynamics (WhoAmI). A failure alerts at once "
                "(wrong or expired secret, missing setting, unreachable) and fails the reconciliation run.",
)


def check_dynamics_credentials_first(dynamics: DynamicsResource, alerts: AlertSink, log) -> dg.AssetCheckResult:
    problem = dynamics_credential_problem(dynamics, alerts, log)
    return dg.AssetCheckResult(
        check_name=DYNAMICS_CREDENTIALS.name,
        passed=problem is None,
        severity=dg.AssetCheckSeverity.ERROR,
        description=problem or "Dynamics accepted the credentials (WhoAmI succeeded).",
    )


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    return markdown.table(columns, [[row.get(c) for c in columns] for row in rows], limit=TABLE_LIMIT, empty="_None._")


@dg.asset_check(
    asset=WEBSITE_RECONCILIATION,
    name="divergence_after_resync",
    description="After the latest nightly reconciliation, every mentor it re-synced shows what the app says "
                "(mentors whose queue row is still on its way are allowed).",
)
def divergence_after_resync(app_db: AppDatabase) -> dg.AssetCheckResult:
    with app_db.connect(autocommit=True) as conn:
        run = store.latest_run(conn, "reconciliation")
        if run is None:
            return dg.AssetCheckResult(passed=True, description="No reconciliation has run yet.",
                                       metadata={"still_divergent": dg.MetadataValue.int(0)})
        rows = store.divergence_after_run(conn, run["id"])
    divergent = [r for r in rows if r["still_divergent"]]
    in_flight = sum(1 for r in rows if r["in_queue"])
    return dg.AssetCheckResult(
        passed=not divergent,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(f"{len(divergent)} mentor(s) still divergent after the reconciliation of "
                     f"{run['started_at']:%Y-%m-%d %H:%M} UTC" if divergent else
                     "Every re-synced mentor matches the app (or is still in flight)."),
        metadata={
            "reconciliation_run_id": dg.MetadataValue.text(str(run["id"])),
            "divergent_found": dg.MetadataValue.int(int(run["summary"].get("divergent", 0))),
            "resynced": dg.MetadataValue.int(len(rows)),
            "in_flight": dg.MetadataValue.int(in_flight),
            "still_divergent": dg.MetadataValue.int(len(divergent)),
            "still_divergent_mentors": dg.MetadataValue.md(markdown_table(
                divergent, ["mentor_id", "classification", "action", "queue_id", "should_be_listed", "confirmed_listed"])),
        },
    )


@dg.asset_check(
    asset=WEBSITE_RECONCILIATION,
    name="no_stale_dead_sync_rows",
    description="No sync_queue row has been dead for more than a day without a later write for the same mentor.",
)
def no_stale_dead_sync_rows(app_db: AppDatabase) -> dg.AssetCheckResult:
    with app_db.connect(autocommit=True) as conn:
        rows = store.unresolved_dead_rows(conn, DEAD_ROW_GRACE_SECONDS)
    return dg.AssetCheckResult(
        passed=not rows,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(f"{len(rows)} dead sync row(s) older than a day need a person (fix the cause, then force-sync "
                     "the mentor)." if rows else "No dead sync rows older than a day."),
        metadata={
            "stale_dead_rows": dg.MetadataValue.int(len(rows)),
            "rows": dg.MetadataValue.md(markdown_table(
                rows, ["id", "mentor_id", "operation", "triggered_by_event", "attempts", "processed_at", "last_error"])),
        },
    )


@dg.asset_check(
    asset=WEBSITE_RECONCILIATION,
    name="no_duplicate_records",
    description="The compensation query (reconciliation_duplicates) finds no duplicate reminder, notification, "
                "expired_cert transition or reconciliation action for one certification period.",
)
def no_duplicate_records(app_db: AppDatabase) -> dg.AssetCheckResult:
    with app_db.connect(autocommit=True) as conn:
        rows = store.duplicates(conn)
    by_kind: dict[str, int] = {}
    for row in rows:
        by_kind[row["kind"]] = by_kind.get(row["kind"], 0) + 1
    return dg.AssetCheckResult(
        passed=not rows,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(f"{len(rows)} duplicate(s) for manual review: select * from reconciliation_duplicates"
                     if rows else "No duplicates."),
        metadata={
            "duplicates": dg.MetadataValue.int(len(rows)),
            "by_kind": dg.MetadataValue.md(markdown_table(
                [{"kind": k, "count": n} for k, n in sorted(by_kind.items())], ["kind", "count"])),
            "rows": dg.MetadataValue.md(markdown_table(
                rows, ["kind", "mentor_id", "certification_expiry_date", "threshold_day", "reconciliation_run_id",
                       "occurrences", "row_ids"])),
        },
    )


reconciliation_checks = [divergence_after_resync, no_stale_dead_sync_rows, no_duplicate_records]
