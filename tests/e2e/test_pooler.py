"""Sensor-started sync runs one after another, the real daemon's run workers reaching the app's
database through PgBouncer in transaction mode (the stack's DATABASE_URL), as on Supabase's
port 6543. The second such run once crashed on a prepared statement the first had left on the
server connection the pooler handed it."""

from __future__ import annotations

import pytest

from tests.e2e.harness import Stack, wait_for
from tests.e2e.test_lifecycle import new_mentor, set_status, wait_listed

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings("ignore:Using variable_values and operation_name:DeprecationWarning"),
]


def test_several_sensor_started_runs_in_a_row_through_the_pooler_each_succeed(stack: Stack):
    mentors = [new_mentor(stack, "HLF", f"E2E Pooler {n}", listed_in_dynamics=True, settled=True) for n in range(3)]
    seen_runs: list[str] = []
    for mentor in mentors:
        set_status(stack, mentor, "paused")
        wait_listed(stack, mentor, False, "a paused mentor removed through the pooled database")
        # The run that wrote it, new each time: the one before finished before this change.
        [run] = wait_for(lambda: [r for r in stack.runs("website_sync_job", limit=1) if r["runId"] not in seen_runs],
                         timeout=30, what="the website_sync_job run that wrote the change")
        assert any(t["key"] == "dagster/sensor_name" and t["value"] == "sync_queue_sensor" for t in run["tags"])
        status = stack.wait_for_run(run["runId"])
        assert status == "SUCCESS", stack.run_failure_message(run["runId"])
        seen_runs.append(run["runId"])
    assert len(set(seen_runs)) == 3
