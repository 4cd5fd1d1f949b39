"""After the lifecycle (this file sorts last in the folder, when the most has been written):
every finished run succeeded except the ones made to fail on purpose, and the client secret and
the webhook URL never reached a log, run config, event or metadata."""

from __future__ import annotations

import psycopg
import pytest

from tests.e2e.harness import FIRST_SECRET, Stack

pytestmark = [
    pytest.mark.e2e,
    # gql (under DagsterGraphQLClient) warns about its own call style; not ours, not Dagster's.
    pytest.mark.filterwarnings("ignore:Using variable_values and operation_name:DeprecationWarning"),
]


def test_every_finished_run_succeeded_except_the_planned_failures(stack: Stack):
    jobs = ("website_sync_job", "nightly_expiry_job", "nightly_reconciliation_job", "drift_watch_job", "__ASSET_JOB")
    finished = [run for job in jobs for run in stack.runs(job, limit=200)
                if run["status"] in ("SUCCESS", "FAILURE", "CANCELED")]
    assert finished
    unexpected = [(r["jobName"], r["runId"], r["status"]) for r in finished
                  if r["status"] != "SUCCESS" and r["runId"] not in stack.expected_failed_runs]
    assert not unexpected, "\n".join(f"{job} {run_id} {status}: {stack.run_failure_message(run_id)}"
                                       for job, run_id, status in unexpected)


def test_secrets_never_reach_logs_run_config_or_event_log(stack: Stack):
    secrets = {"client secret": FIRST_SECRET, "current client secret": stack.secret,
               "webhook URL": stack.webhook.url, "webhook token": stack.webhook.url.rsplit("/", 1)[-1]}
    for path in sorted(stack.logs.glob("*.log")):
        text = path.read_text(errors="replace")
        for what, value in secrets.items():
            assert value not in text, f"the {what} appears in {path.name}"

    # Dagster's storage: run records (run config, tags), the event log (messages, metadata), sensor ticks.
    with psycopg.connect(stack.storage_url) as conn:
        tables = [name for (name,) in conn.execute(
            "select table_name from information_schema.tables where table_schema = 'public'"
        )]
        assert {"runs", "event_logs"} <= set(tables)
        for table in tables:
            for what, value in secrets.items():
                hits = conn.execute(
                    f'select count(*) from "{table}" t where t::text like %s', (f"%{value}%",)
                ).fetchone()[0]
                assert hits == 0, f"the {what} appears in {hits} row(s) of Dagster's {table} table"
