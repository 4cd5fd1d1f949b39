"""The expiry domain's schedule: every Oslo night at 02:00."""

from __future__ import annotations

import dagster as dg

from mentor_pipeline.expiry.jobs import nightly_expiry_job
from mentor_pipeline.nights import night_at
from mentor_pipeline.timezone import OSLO_TZ


@dg.schedule(
    name="nightly_expiry_schedule",
    cron_schedule="0 2 * * *",
    execution_timezone=OSLO_TZ,
    job=nightly_expiry_job,
    description="Every night at 02:00 Oslo time, for that Oslo night's partition. On the spring-forward"
                " night, when 02:00 does not exist, Dagster fires at 03:00 instead: the same night.",
    # On from the first deploy: a stopped schedule is a silent gap in reminders and expiries.
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def nightly_expiry_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    # The scheduled time, not the evaluation time: a late tick still runs the night it was for.
    night = night_at(context.scheduled_execution_time)
    return dg.RunRequest(partition_key=night.isoformat(), run_key=f"nightly_expiry:{night.isoformat()}")
