"""Sensors of the website sync: `sync_queue_sensor` starts a drain when sync_queue has due rows,
unless the Dynamics sign-in is known to be broken (then it re-checks it now and then, and starts
again once it works); `website_sync_health_sensor` evaluates the freshness check every minute
and looks for an outage between drains."""

from __future__ import annotations

import json
import time

import dagster as dg

from mentor_pipeline.operations.alerts import AlertSink
from mentor_pipeline.operations.health import check_dynamics_credentials
from mentor_pipeline.operations.store import Incident, open_incidents
from mentor_pipeline.resources import AppDatabase, DynamicsResource, SyncSettings
from mentor_pipeline.sync import store
from mentor_pipeline.sync.assets import WEBSITE_SYNC_JOB
from mentor_pipeline.sync.checks import FRESHNESS_CHECK, evaluation
from mentor_pipeline.sync.health import alert_if_unreachable, check_freshness
from mentor_pipeline.sync.jobs import website_sync_job
from mentor_pipeline.vocabulary import IncidentKind

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


def _cursor(cursor: str | None) -> dict:
    try:
        value = json.loads(cursor) if cursor else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _cursor_sequence(cursor: dict) -> int:
    try:
        return int(cursor.get("seq", 0))
    except (ValueError, TypeError):
        return 0


def _sign_in_gate(context, cursor: dict, broken: list[Incident], dynamics: DynamicsResource, alerts: AlertSink,
                  interval_seconds: float, due_count: int) -> str | None:
    """While a sign-in incident is open, no drain: every drain would fail the same way. Re-check
    the credentials (WhoAmI) at most every `interval_seconds` after the last check or failure;
    a passing check resolves the incidents. Returns why no drain starts, or None to go on."""
    now = time.time()
    last = max([float(cursor.get("credentials_checked_at", 0))] + [i.last_seen.timestamp() for i in broken])
    waiting = f"{due_count} change(s) kept pending" if due_count else "nothing due"
    if now - last < interval_seconds:
        return (f"{', '.join(i.key for i in broken)} open: no drain, {waiting}; next credential check in "
                f"{interval_seconds - (now - last):.0f} s")
    cursor["credentials_checked_at"] = round(now, 3)
    if not check_dynamics_credentials(dynamics, alerts, context.log):
        return f"the Dynamics credential check still fails: no drain, {waiting}; next check in {interval_seconds:.0f} s"
    return None


def _drain_in_progress(context: dg.SensorEvaluationContext, now: float) -> dg.DagsterRun | None:
    """A sync run queued or running that is not presumed stuck (a stuck one is logged and ignored)."""
    for record in context.instance.get_run_records(
        filters=dg.RunsFilter(job_name=WEBSITE_SYNC_JOB, statuses=ACTIVE_RUN_STATUSES), limit=5
    ):
        run = record.dagster_run
        limit = STUCK_NOT_STARTED_SECONDS if run.status == dg.DagsterRunStatus.NOT_STARTED else STUCK_RUN_SECONDS
        if now - record.create_timestamp.timestamp() < limit:
            return run
        context.log.warning("sync run %s has been %s for over %d s; starting another drain",
                            run.run_id, run.status.value.lower(), limit)
    return None


@dg.sensor(
    name="sync_queue_sensor",
    job=website_sync_job,
    minimum_interval_seconds=2,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Requests one website_sync_job run when sync_queue has due pending rows or expired leases "
        "(an index-only check), unless a sync run is already queued or running. While a Dynamics sign-in "
        "incident is open it starts none (the rows stay pending) and re-checks the credentials (WhoAmI) every "
        "SyncSettings.credential_check_minutes; once the check passes, the incident resolves and the drain starts."
    ),
)
def sync_queue_sensor(context: dg.SensorEvaluationContext, app_db: AppDatabase, dynamics: DynamicsResource,
                      alerts: AlertSink, sync_settings: SyncSettings):
    cursor = _cursor(context.cursor)
    now = time.time()
    # Runs first, incidents second: a run that fails on sign-in opens its incident before it
    # ends, so a run that ended after this look has its incident in the next one. The other order
    # could miss both (no incident yet, no run any more) and start a second doomed run.
    running = _drain_in_progress(context, now)
    with app_db.connect(autocommit=True) as conn:
        due = store.tick(conn)  # the clock tick marks lapsed certifications too
        broken = [i for i in open_incidents(conn) if i.kind in IncidentKind.SIGN_IN]
    held = None
    if broken:
        held = _sign_in_gate(context, cursor, broken, dynamics, alerts,
                             sync_settings.credential_check_interval().total_seconds(), due.due_count)
    if held is None and not due.anything_due:
        held = "nothing due in sync_queue"
    if held is not None:
        # The cursor remembers when the credentials were last checked.
        if cursor != _cursor(context.cursor):
            return dg.SensorResult(skip_reason=held, cursor=json.dumps(cursor))
        return dg.SkipReason(held)

    if running is not None:
        return dg.SkipReason(f"{due.due_count} due row(s): run {running.run_id} is already "
                             f"{running.status.value.lower()} and drains them")

    seq = _cursor_sequence(cursor) + 1
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
        cursor=json.dumps({**cursor, "seq": seq, "max_due_id": due.max_due_id, "requested_at": round(now, 3)}),
    )


# While nothing waits and nothing changed, one evaluation every this often keeps the plot going.
IDLE_REPORT_SECONDS = 600


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
