"""After the lifecycle: the client secret and the webhook URL never reached a log, run config,
event or metadata. Runs last in this folder (file order), when the most has been written."""

from __future__ import annotations

import psycopg
import pytest

from tests.e2e.harness import FIRST_SECRET, Stack

pytestmark = [
    pytest.mark.e2e,
    # gql (under DagsterGraphQLClient) warns about its own call style; not ours, not Dagster's.
    pytest.mark.filterwarnings("ignore:Using variable_values and operation_name:DeprecationWarning"),
]


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
