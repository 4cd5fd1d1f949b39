"""Sensors of the website sync: start a drain when sync_queue has due rows."""


import json
import time

import dagster as dg

from mentor_pipeline.resources import AppDatabase
from mentor_pipeline.sync.assets import WEBSITE_SYNC_JOB, website_listing
from mentor_pipeline.sync.queue import due_summary

website_sync_job = dg.define_asset_job(
    WEBSITE_SYNC_JOB,
    # The asset checks (divergence, stale dead rows, duplicates) belong to the nightly run;
    # the event-driven drain is latency-sensitive.
    selection=dg.AssetSelection.assets(website_listing).without_checks(),
    description="Drain sync_queue into Dynamics: every due status change, in $batch requests.",
    # Latency-sensitive: one process, no per-step subprocess (about 1.5 s saved per run).
    executor_def=dg.in_process_executor,
    # Shares the Dataverse service-protection budget with the other Dynamics jobs (dagster.yaml).
    # `tags`, not `run_tags`: a run launched from the UI or GraphQL carries only the job's tags.
    tags={"mentor_pipeline/dynamics": "website_sync"},
)

ACTIVE_RUN_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]
# A run "in progress" for longer than this is presumed stuck: the sensor no longer waits for it
# (the queue's leases keep a second drain from touching the first one's rows). A queued run may
# wait long behind the Dynamics concurrency slot; a run the daemon never even submitted
# (NOT_STARTED) is a leftover of a failed launch after a minute.
STUCK_RUN_SECONDS = 30 * 60
STUCK_NOT_STARTED_SECONDS = 60


def _cursor_sequence(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        return int(json.loads(cursor).get("seq", 0))
    except (ValueError, AttributeError, TypeError):
        return 0


@dg.sensor(
    name="sync_queue_sensor",
    job=website_sync_job,
    minimum_interval_seconds=2,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Requests one website_sync_job run when sync_queue has due pending rows or expired leases "
        "(an index-only check), unless a sync run is already queued or running."
    ),
)
def sync_queue_sensor(context: dg.SensorEvaluationContext, app_db: AppDatabase):
    with app_db.connect(autocommit=True) as conn:
        due = due_summary(conn)
    if not due.anything_due:
        return dg.SkipReason("nothing due in sync_queue")

    now = time.time()
    for record in context.instance.get_run_records(
        filters=dg.RunsFilter(job_name=WEBSITE_SYNC_JOB, statuses=ACTIVE_RUN_STATUSES), limit=5
    ):
        limit = STUCK_NOT_STARTED_SECONDS if record.dagster_run.status == dg.DagsterRunStatus.NOT_STARTED else STUCK_RUN_SECONDS
        if now - record.create_timestamp.timestamp() < limit:
            return dg.SkipReason(
                f"{due.due_count} due row(s): run {record.dagster_run.run_id} is already "
                f"{record.dagster_run.status.value.lower()} and drains them"
            )
        context.log.warning("sync run %s has been %s for over %d s; starting another drain",
                            record.dagster_run.run_id, record.dagster_run.status.value.lower(), limit)

    seq = _cursor_sequence(context.cursor) + 1
    # Sequence (from the cursor) + newest due row + wall-clock ms: never repeats, even after a
    # cursor reset, so Dagster never drops a request as a duplicate of an earlier one.
    run_key = f"website-sync-{seq}-q{due.max_due_id or 0}-t{int(now * 1000)}"
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=run_key,
                tags={
                    "mentor_pipeline/due_rows": str(due.due_count),
                    "mentor_pipeline/expired_leases": str(due.expired_leases),
                },
            )
        ],
        cursor=json.dumps({"seq": seq, "max_due_id": due.max_due_id, "requested_at": round(now, 3)}),
    )
