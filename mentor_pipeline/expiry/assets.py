"""Dagster assets, job and schedule for the nightly certification expiry.

The rules are SQL functions (supabase/migrations/*_expiry.sql); these assets choose the run
date, call them, and turn the counts they return into metadata people read in the UI.
"""


from datetime import date, datetime, timezone

import dagster as dg
from pydantic import Field

from mentor_pipeline import markdown
from mentor_pipeline.alerts import AlertSink
from mentor_pipeline.expiry import store
from mentor_pipeline.expiry.dates import OSLO, RunDateError, parse_run_date, today_in_oslo
from mentor_pipeline.expiry.run import CertificationStateResult, apply_certification_state
from mentor_pipeline.health import check_dynamics_credentials
from mentor_pipeline.resources import AppDatabase, DynamicsResource

GROUP = "certification_expiry"
OWNERS = ["team:peer-mentor-coordination"]


class ExpiryRunConfig(dg.Config):
    run_date: str | None = Field(
        default=None,
        description="The night to run, YYYY-MM-DD (Europe/Oslo). Empty: the Oslo date the run was created."
        " Re-running a night that already ran creates nothing new.",
    )


def resolve_run_date(context: dg.AssetExecutionContext, config: ExpiryRunConfig) -> date:
    """The configured date, else the Oslo date the run was created (the same for every step)."""
    today = today_in_oslo()
    if config.run_date is None:
        record = context.instance.get_run_record_by_id(context.run.run_id)
        created = record.create_timestamp if record else datetime.now(timezone.utc)
        if created.tzinfo is None:
            created = created.replace(tzinfo=timezone.utc)
        return min(created.astimezone(OSLO).date(), today)
    try:
        return parse_run_date(config.run_date, today=today)
    except RunDateError as exc:
        raise dg.Failure(description=str(exc)) from None


def _credentials_ok(context: dg.AssetExecutionContext, dynamics: DynamicsResource, alerts: AlertSink) -> bool:
    # Reminders and transitions do not need Dynamics: a failed check alerts, it never stops them.
    try:
        return check_dynamics_credentials(dynamics, alerts, context.log)
    except Exception as exc:  # an unexpected failure of the check itself is reported the same way
        summary = f"Dynamics credential check could not run: {type(exc).__name__}: {exc}"
        context.log.error(summary)
        alerts.alert("dynamics_health_check_failed", summary)
        return False


def _bucket_table(result: CertificationStateResult) -> str:
    state = result.state
    rows = []
    for org in state.organizations():
        counts = [state.counts.get((org, bucket), 0) for bucket in store.BUCKETS]
        rows.append([org, *counts, sum(counts)])
    return markdown.table(["organisation", *store.BUCKETS, "total"], rows, right={*store.BUCKETS, "total"})


def _gaps_table(gaps: store.CertificationGaps) -> str:
    rows = [[g["full_name"], g["organization"], g["chapter"] or "-", g["mentor_id"]] for g in gaps.sample]
    return markdown.table(["mentor", "organisation", "chapter", "mentor_id"], rows, total=gaps.total,
                          see="`select * from active_mentors_without_certification()`", empty="None.")


def certification_state_metadata(result: CertificationStateResult, credentials_ok: bool | None) -> dict:
    metadata: dict = {"run_date": dg.MetadataValue.text(result.run_date.isoformat())}
    if credentials_ok is not None:
        metadata["dynamics_credentials_ok"] = dg.MetadataValue.bool(credentials_ok)
    metadata.update({f"mentors_{bucket}": dg.MetadataValue.int(n) for bucket, n in result.state.per_bucket().items()})
    metadata["mentors_by_organization_and_bucket"] = dg.MetadataValue.md(_bucket_table(result))
    metadata["mentors_transitioned_to_expired_cert"] = dg.MetadataValue.int(result.transitions.total)
    metadata["transitioned_by_organization"] = dg.MetadataValue.json(result.transitions.by_organization)
    metadata["transitioned_mentor_ids_sample"] = dg.MetadataValue.json(result.transitions.sample_mentor_ids)
    metadata["active_without_certification"] = dg.MetadataValue.int(result.gaps.total)
    metadata["active_without_certification_list"] = dg.MetadataValue.md(_gaps_table(result.gaps))
    return metadata


def reminders_metadata(run_date: date, reminders: store.Reminders) -> dict:
    table = markdown.table(
        ["organisation", "threshold (days)", "reminders", "notifications"],
        [[org, threshold, r, n] for (org, threshold), (r, n) in reminders.counts.items()],
        right={"threshold (days)", "reminders", "notifications"},
        empty="Nothing new: every reminder due was already sent.",
    )
    return {
        "run_date": dg.MetadataValue.text(run_date.isoformat()),
        "reminders_created": dg.MetadataValue.int(reminders.reminders),
        "notifications_created": dg.MetadataValue.int(reminders.notifications),
        "reminders_by_threshold": dg.MetadataValue.json({str(k): v for k, v in reminders.per_threshold().items()}),
        "reminders_by_organization_and_threshold": dg.MetadataValue.md(table),
    }


@dg.asset(
    description=(
        "Per mentor: the most recent certification, its expiry (Oslo date), days left and whether it"
        " is valid as of the run date, in the `certification_state` table. Before the snapshot, active"
        " mentors whose most recent certification has lapsed become `expired_cert` (the outbox trigger"
        " queues the website removal for HLF, marked nightly_expiry). The run starts with a Dynamics"
        " credential check (WhoAmI) that alerts on failure but does not stop the run."
    ),
    owners=OWNERS,
    group_name=GROUP,
    kinds={"postgres"},
)
def certification_state(
    context: dg.AssetExecutionContext,
    config: ExpiryRunConfig,
    app_db: AppDatabase,
    dynamics: DynamicsResource,
    alerts: AlertSink,
) -> dg.MaterializeResult:
    run_date = resolve_run_date(context, config)
    credentials_ok = _credentials_ok(context, dynamics, alerts)
    with app_db.connect() as conn:
        result = apply_certification_state(conn, run_date)
    context.log.info(
        f"certification state as of {run_date}: {result.transitions.total} mentors moved to expired_cert,"
        f" {result.gaps.total} active without any certification"
    )
    return dg.MaterializeResult(metadata=certification_state_metadata(result, credentials_ok))


@dg.asset(
    deps=[certification_state],
    description=(
        "One reminder per (mentor, threshold_day, certification_expiry_date) in `cert_expiry_reminders`"
        " and one coordinator notification per reminder in `coordinator_notifications`, for valid"
        " certifications within a threshold (per-organisation thresholds, default 30/14/7; only the"
        " tightest threshold reached is sent). Unique constraints make a re-run add nothing."
    ),
    owners=OWNERS,
    group_name=GROUP,
    kinds={"postgres"},
)
def expiry_reminders(
    context: dg.AssetExecutionContext, config: ExpiryRunConfig, app_db: AppDatabase
) -> dg.MaterializeResult:
    run_date = resolve_run_date(context, config)
    with app_db.connect() as conn:
        reminders = store.create_reminders(conn, run_date)
    context.log.info(f"{reminders.reminders} reminders and {reminders.notifications} notifications created for {run_date}")
    return dg.MaterializeResult(metadata=reminders_metadata(run_date, reminders))


nightly_expiry_job = dg.define_asset_job(
    name="nightly_expiry_job",
    selection=[certification_state, expiry_reminders],
    description="Certification expiry for one night: transitions, certification state, reminders.",
)


def run_config_for(run_date: date) -> dict:
    config = {"config": {"run_date": run_date.isoformat()}}
    return {"ops": {"certification_state": config, "expiry_reminders": config}}


@dg.schedule(
    name="nightly_expiry_schedule",
    cron_schedule="0 2 * * *",
    execution_timezone="Europe/Oslo",
    job=nightly_expiry_job,
    description="Every night at 02:00 Oslo time, for that Oslo date.",
    # On from the first deploy: a stopped schedule is a silent gap in reminders and expiries.
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def nightly_expiry_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    # The scheduled time, not the evaluation time: a late tick still runs the night it was for.
    run_date = context.scheduled_execution_time.astimezone(OSLO).date()
    return dg.RunRequest(
        run_key=f"nightly_expiry:{run_date.isoformat()}",
        run_config=run_config_for(run_date),
        tags={"mentor_pipeline/run_date": run_date.isoformat()},
    )
