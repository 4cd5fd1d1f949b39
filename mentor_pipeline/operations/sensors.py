"""The operations domain's sensors: open incidents shown on the `operator_incidents` asset, and
failed runs as incidents.

Failed runs, one incident per job: `run_failed` (scope: the job) opens with the failure's
first error line, and the job's next successful run resolves it. A failure whose step already
alerted its own incident (a `dg.Failure` naming it in metadata, e.g. a wrong client secret) is
part of that incident, not a second one."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import dagster as dg

from mentor_pipeline.operations.alerts import AlertSink
from mentor_pipeline.operations.assets import observation
from mentor_pipeline.operations.store import RUN_FAILURE_INCIDENT_KEY, Incident, open_incidents
from mentor_pipeline.redaction import redact
from mentor_pipeline.operations import liveness
from mentor_pipeline.resources import AppDatabase
from mentor_pipeline.vocabulary import IncidentKind


def _first_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


def _user_error(error) -> str:
    """The first error in the chain that is not Dagster's own wrapper ("Error occurred while
    executing op ..."): the exception the code raised."""
    chain = []
    while error is not None:
        chain.append(error)
        error = error.cause
    for item in chain:
        if not (item.cls_name or "").startswith("Dagster"):
            return _first_line(item.message)
    return _first_line(chain[-1].message) if chain else ""


def first_error_line(context: dg.RunFailureSensorContext) -> str:
    """What went wrong, in one line: the first failed step's `dg.Failure` description or
    exception, else the run's own error (resource setup, a dead worker), else its message."""
    for event in context.get_step_failure_events():
        data = event.step_failure_data
        user = data.user_failure_data
        line = _first_line(user.description) if user is not None and user.description else _user_error(data.error)
        if line:
            return f"{event.step_key}: {line}"
    error = getattr(context.failure_event.event_specific_data, "error", None)
    return (_user_error(error) if error is not None else "") or _first_line(context.failure_event.message) or "no error message"


def incident_of_failure(context: dg.RunFailureSensorContext) -> str | None:
    """The incident a failed step's `dg.Failure` says it already alerted as, if any."""
    for event in context.get_step_failure_events():
        user = event.step_failure_data.user_failure_data
        value = (user.metadata or {}).get(RUN_FAILURE_INCIDENT_KEY) if user is not None else None
        kind = getattr(value, "value", value)
        if isinstance(kind, str) and kind:
            return kind
    return None


@dg.run_failure_sensor(
    name="run_failure_alert_sensor",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every failed run is an occurrence of the incident run_failed:<job>, with the failure's first "
                "error line (posted when it opens, then only reminders); the job's next success resolves it.",
)
def run_failure_alert_sensor(context: dg.RunFailureSensorContext, alerts: AlertSink):
    run = context.dagster_run
    line = redact(first_error_line(context))
    incident = incident_of_failure(context)
    if incident:
        context.log.info(f"run {run.run_id} of {run.job_name} failed as part of incident {incident}, "
                         f"already alerted: {line}")
        return
    alerts.alert(
        IncidentKind.RUN_FAILED,
        f"Dagster run of {run.job_name} failed: {line}",
        {"run_id": run.run_id, "job_name": run.job_name},
        scope=run.job_name,
    )


@dg.run_status_sensor(
    name="run_success_resolve_sensor",
    run_status=dg.DagsterRunStatus.SUCCESS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="A successful run resolves its job's run_failed incident (one 'resolved' post if it was open).",
)
def run_success_resolve_sensor(context: dg.RunStatusSensorContext, alerts: AlertSink):
    run = context.dagster_run
    alerts.resolve(IncidentKind.RUN_FAILED, f"run {run.run_id} of {run.job_name} succeeded", scope=run.job_name)


REFRESH_SECONDS = 600  # the incidents table is shown again this often, so the ages stay fresh


def _fingerprint(incidents: list[Incident]) -> str:
    return json.dumps([[i.kind, i.scope, i.state, i.occurrences, i.reminders_sent] for i in incidents])


@dg.sensor(
    name="operator_incidents_sensor",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Shows open incidents on the operator_incidents asset (an observation with a table of age and "
                "count) when they change, and every 10 minutes. Starts no runs.",
)
def operator_incidents_sensor(context: dg.SensorEvaluationContext, app_db: AppDatabase):
    with app_db.connect(autocommit=True) as conn:
        incidents = open_incidents(conn)
    now = datetime.now(timezone.utc)
    fingerprint = _fingerprint(incidents)
    previous = json.loads(context.cursor) if context.cursor else {}
    if previous.get("fingerprint") == fingerprint and time.time() - previous.get("reported_at", 0) < REFRESH_SECONDS:
        return dg.SkipReason(f"{len(incidents)} open incident(s), unchanged")
    return dg.SensorResult(
        asset_events=[observation(incidents, now)],
        cursor=json.dumps({"fingerprint": fingerprint, "reported_at": time.time()}),
    )


@dg.sensor(
    name="dead_run_sensor",
    minimum_interval_seconds=10,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Every 10 s: fails a STARTED run whose Dynamics step (drain, reconciliation, force sync) stopped beating its heartbeat "
        f"{liveness.SILENT_AFTER.total_seconds():.0f} s ago (killed with the daemon or code server, out of memory, "
        "host restarted), so the next drain starts instead of queueing behind it. Its claimed changes come back "
        "when their leases end."
    ),
)
def dead_run_sensor(context: dg.SensorEvaluationContext, app_db: AppDatabase):
    # Only a step that holds the Dynamics budget beats, and it removes its heartbeat when it ends:
    # a silent heartbeat of a STARTED run is a worker that died mid-step.
    started = {
        record.dagster_run.run_id: record.dagster_run
        for record in context.instance.get_run_records(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
    }
    if not started:
        return dg.SkipReason("no run is running")
    with app_db.connect(autocommit=True) as conn:
        silent = liveness.silent_runs(conn, list(started))
        for run in silent:
            message = run.failure_message()
            context.log.warning("failing run %s: %s", run.run_id, message)
            context.instance.report_run_failed(started[run.run_id], message)
            liveness.end(conn, run.run_id)
    if not silent:
        return dg.SkipReason(f"{len(started)} run(s) running, none with a silent heartbeat")
    return dg.SkipReason(f"failed {len(silent)} run(s) whose worker died: {', '.join(r.run_id for r in silent)}")
