"""`drift_watch_sensor`: one look of the drift watch every MENTOR_PIPELINE_DRIFT_WATCH_MINUTES."""

from __future__ import annotations

import os
import time

import dagster as dg

from mentor_pipeline import settings as environment
from mentor_pipeline.drift.jobs import DRIFT_WATCH_JOB, drift_watch_job
from mentor_pipeline.operations.store import open_incidents
from mentor_pipeline.resources import AppDatabase
from mentor_pipeline.vocabulary import IncidentKind

ACTIVE = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
          dg.DagsterRunStatus.STARTED]


def interval_seconds(environ=os.environ) -> int:
    """The look interval from the environment; a bad value stops the code location, saying so."""
    variable = environment.DRIFT_WATCH_MINUTES
    raw = environ.get(variable.name, "").strip()
    try:
        minutes = float(raw) if raw else float(variable.default)
    except ValueError:
        minutes = -1.0
    if not minutes > 0:
        raise ValueError(f"{variable.name} must be a positive number of minutes, e.g. {variable.default:g} "
                         f"(got {raw!r}): fix it in the Dagster processes' environment")
    return max(5, round(minutes * 60))  # the daemon ticks sensors at most every few seconds


@dg.sensor(
    name="drift_watch_sensor",
    job=drift_watch_job,
    minimum_interval_seconds=interval_seconds(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every MENTOR_PIPELINE_DRIFT_WATCH_MINUTES (default 3): one drift_watch_job run (a delta read of "
                "Dynamics' contacts, one request while nothing changed), unless one is still queued or running or "
                "the Dynamics sign-in is known to be broken (sync_queue_sensor re-checks it).",
)
def drift_watch_sensor(context: dg.SensorEvaluationContext, app_db: AppDatabase):
    active = context.instance.get_run_records(
        filters=dg.RunsFilter(job_name=DRIFT_WATCH_JOB, statuses=ACTIVE), limit=1)
    if active:
        return dg.SkipReason(f"look {active[0].dagster_run.run_id} is still {active[0].dagster_run.status.value.lower()}")
    with app_db.connect(autocommit=True) as conn:
        broken = [i.key for i in open_incidents(conn) if i.kind in IncidentKind.SIGN_IN]
    if broken:
        return dg.SkipReason(f"{', '.join(broken)} open: no look until the sign-in works again")
    return dg.RunRequest(run_key=f"drift-watch-{int(time.time() * 1000)}")
