"""The stack runs the repository's own dagster.yaml: its run queue limits hold as deployed."""

from __future__ import annotations

import pytest
import yaml

from mentor_pipeline.demo.instance import repository_instance
from mentor_pipeline.expiry.dates import today_in_oslo
from tests.e2e.harness import Stack

pytestmark = [
    pytest.mark.e2e,
    # gql (under DagsterGraphQLClient) warns about its own call style; not ours, not Dagster's.
    pytest.mark.filterwarnings("ignore:Using variable_values and operation_name:DeprecationWarning"),
]


def test_the_webserver_runs_the_repositorys_run_queue_settings(stack: Stack):
    deployed = yaml.safe_load(repository_instance().read_text())["concurrency"]["runs"]
    config = stack.graphql("{ instance { runQueueConfig { maxConcurrentRuns tagConcurrencyLimitsYaml } } }")
    running = config["instance"]["runQueueConfig"]
    assert running["maxConcurrentRuns"] == deployed["max_concurrent_runs"]
    assert yaml.safe_load(running["tagConcurrencyLimitsYaml"]) == deployed["tag_concurrency_limits"]


def test_dynamics_runs_take_turns(stack: Stack):
    """One run tagged mentor_pipeline/dynamics at a time: a reconciliation and a sync submitted
    together run one after the other, the second waiting in the queue."""
    tonight = {"dagster/partition": today_in_oslo().isoformat()}
    reconciliation = stack.submit_job("nightly_reconciliation_job", tags=tonight)
    sync = stack.submit_job("website_sync_job")
    for run_id in (reconciliation, sync):
        assert stack.wait_for_run(run_id) == "SUCCESS", stack.run_failure_message(run_id)
    (_, first_end), (second_start, _) = sorted(stack.run_times(run_id) for run_id in (reconciliation, sync))
    assert first_end <= second_start
