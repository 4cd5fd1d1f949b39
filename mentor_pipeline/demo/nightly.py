"""The demo's first night: one nightly expiry, then one reconciliation, launched like any run.

Submitted through the webserver's GraphQL API (Dagster's public client), so the queued run
coordinator and the daemon start them exactly as they start scheduled runs; the UI then opens
on run history, asset checks and metadata plots instead of "Never materialized". Runs in a
background thread: the demo is usable while they run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone

from dagster import DagsterRunStatus
from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

from mentor_pipeline.expiry.jobs import nightly_expiry_job
from mentor_pipeline.nights import night_at
from mentor_pipeline.reconcile.jobs import nightly_reconciliation_job

# In this order, as at night (the expiry's transitions queue removals, then reconciliation checks).
NIGHTLY_JOBS = ((nightly_expiry_job.name, "nightly expiry"), (nightly_reconciliation_job.name, "nightly reconciliation"))
DEMO_TAGS = {"mentor_pipeline/started_by": "demo"}
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


def start_first_night(dagster_url: str, port: int, say: Callable[[str], None], *, timeout: float = 600.0) -> threading.Thread:
    thread = threading.Thread(target=_first_night, args=(dagster_url, port, say, timeout),
                              name="demo-first-night", daemon=True)
    thread.start()
    return thread


def _first_night(dagster_url: str, port: int, say: Callable[[str], None], timeout: float) -> None:
    client = DagsterGraphQLClient("127.0.0.1", port_number=port)
    deadline = time.monotonic() + timeout
    for job_name, what in NIGHTLY_JOBS:
        try:
            run_id = _submit(client, job_name, deadline)
            say(f"  {what}: run started, {dagster_url}/runs/{run_id}")
            status = _wait_for(client, run_id, deadline)
        except Exception as exc:  # the demo goes on; the UI still works without this history
            say(f"  {what}: could not run ({type(exc).__name__}: {exc}); launch {job_name} from the UI")
            return
        say(f"  {what}: {status.value.lower()}")


def _submit(client: DagsterGraphQLClient, job_name: str, deadline: float) -> str:
    # Right after start the webserver may still be loading the code location: retry until then.
    while True:
        try:
            # Tonight's partition (an Oslo date), as the schedule and the automation request it.
            tonight = night_at(datetime.now(timezone.utc)).isoformat()
            return client.submit_job_execution(job_name, tags={**DEMO_TAGS, "dagster/partition": tonight})
        except DagsterGraphQLClientError:
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


def _wait_for(client: DagsterGraphQLClient, run_id: str, deadline: float) -> DagsterRunStatus:
    while (status := client.get_run_status(run_id)) not in FINISHED:
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} still {status.value.lower()}")
        time.sleep(2)
    return status
