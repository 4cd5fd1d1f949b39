"""Dagster assets for the nightly certification expiry (its job: jobs.py, its schedule: schedules.py).

The rules are SQL functions (supabase/schemas/30_expiry.sql); each asset is one step of
`run.py` for one Oslo night (the partition key is the run date), and turns the counts the
SQL returns into metadata people read in the UI.
"""

import dagster as dg

from mentor_pipeline import markdown
from mentor_pipeline.expiry import report, store
from mentor_pipeline.expiry.run import alert_skipped_organizations, snapshot_certification_state
from mentor_pipeline.nights import NIGHTS, night_of
from mentor_pipeline.operations.alerts import AlertSink
from mentor_pipeline.resources import AppDatabase

GROUP = "certification_expiry"
OWNERS = ["team:peer-mentor-coordination"]


def transitions_metadata(transitions: report.Transitions) -> dict:
    return {
        "mentors_transitioned_to_expired_cert": dg.MetadataValue.int(transitions.total),
        "transitioned_by_organization": dg.MetadataValue.json(transitions.by_organization),
        "transitioned_mentor_ids_sample": dg.MetadataValue.json(transitions.sample_mentor_ids),
    }


def _bucket_table(result: report.CertificationStateResult) -> str:
    state = result.state
    rows = []
    for org in state.organizations():
        counts = [state.counts.get((org, bucket), 0) for bucket in report.BUCKETS]
        rows.append([org, *counts, sum(counts)])
    return markdown.table(["organisation", *report.BUCKETS, "total"], rows, right={*report.BUCKETS, "total"})


def _gaps_table(gaps: report.CertificationGaps) -> str:
    rows = [[g["full_name"], g["organization"], g["chapter"] or "-", g["mentor_id"]] for g in gaps.sample]
    return markdown.table(["mentor", "organisation", "chapter", "mentor_id"], rows, total=gaps.total,
                          see="`select * from active_mentors_without_certification()`", empty="None.")


def certification_state_metadata(result: report.CertificationStateResult) -> dict:
    metadata: dict = {f"mentors_{bucket}": dg.MetadataValue.int(n) for bucket, n in result.state.per_bucket().items()}
    metadata["mentors_by_organization_and_bucket"] = dg.MetadataValue.md(_bucket_table(result))
    metadata["active_without_certification"] = dg.MetadataValue.int(result.gaps.total)
    metadata["active_without_certification_list"] = dg.MetadataValue.md(_gaps_table(result.gaps))
    return metadata


def reminders_metadata(reminders: report.Reminders) -> dict:
    table = markdown.table(
        ["organisation", "threshold (days)", "reminders", "notifications"],
        [[org, threshold, r, n] for (org, threshold), (r, n) in reminders.counts.items()],
        right={"threshold (days)", "reminders", "notifications"},
        empty="Nothing new: every reminder due was already sent.",
    )
    return {
        "reminders_created": dg.MetadataValue.int(reminders.reminders),
        "notifications_created": dg.MetadataValue.int(reminders.notifications),
        "reminders_by_threshold": dg.MetadataValue.json({str(k): v for k, v in reminders.per_threshold().items()}),
        "reminders_by_organization_and_threshold": dg.MetadataValue.md(table),
        "organizations_skipped_invalid_thresholds": dg.MetadataValue.json(reminders.skipped),
    }


@dg.asset(
    description=(
        "Active mentors whose most recent certification expired by 00:00 Oslo time on the night become"
        " `expired_cert` (expire_mentors_with_lapsed_certifications). The outbox trigger queues the"
        " website removal for HLF, marked nightly_expiry. A second run of the same night moves nobody."
    ),
    partitions_def=NIGHTS,
    owners=OWNERS,
    group_name=GROUP,
    kinds={"postgres"},
)
def expired_cert_transitions(context: dg.AssetExecutionContext, app_db: AppDatabase) -> dg.MaterializeResult:
    night = night_of(context)
    with app_db.connect() as conn:
        transitions = store.expire_lapsed_mentors(conn, night)
    context.log.info(f"night {night}: {transitions.total} mentors moved to expired_cert")
    return dg.MaterializeResult(metadata=transitions_metadata(transitions))


@dg.asset(
    deps=[expired_cert_transitions],
    description=(
        "Per mentor: the most recent certification, its expiry (Oslo date), days left and whether it"
        " is valid as of the night, in the `certification_state` view; counts per organisation and"
        " bucket, and the active mentors without any certification (listed, not transitioned)."
    ),
    partitions_def=NIGHTS,
    owners=OWNERS,
    group_name=GROUP,
    kinds={"postgres"},
)
def certification_state(context: dg.AssetExecutionContext, app_db: AppDatabase) -> dg.MaterializeResult:
    night = night_of(context)
    with app_db.connect() as conn:
        result = snapshot_certification_state(conn, night)
    context.log.info(f"certification state as of {night}: {result.gaps.total} active without any certification")
    return dg.MaterializeResult(metadata=certification_state_metadata(result))


@dg.asset(
    deps=[certification_state],
    description=(
        "One reminder per (mentor, threshold_day, certification_expiry_date) in `cert_expiry_reminders`"
        " and one coordinator notification per reminder in `coordinator_notifications`, for valid"
        " certifications within a threshold (per-organisation thresholds, default 30/14/7; only the"
        " tightest threshold reached is sent). Unique constraints make a re-run add nothing. An"
        " organisation whose own thresholds are invalid gets no reminders and an alert; the others run."
    ),
    partitions_def=NIGHTS,
    owners=OWNERS,
    group_name=GROUP,
    kinds={"postgres"},
)
def expiry_reminders(context: dg.AssetExecutionContext, app_db: AppDatabase, alerts: AlertSink) -> dg.MaterializeResult:
    night = night_of(context)
    with app_db.connect() as conn:
        reminders = store.create_reminders(conn, night)
    alert_skipped_organizations(reminders, alerts, context.log.warning)
    context.log.info(f"{reminders.reminders} reminders and {reminders.notifications} notifications created for {night}")
    return dg.MaterializeResult(metadata=reminders_metadata(reminders))
