"""The code location's wiring: every step that calls Dynamics shares the one Dataverse budget
(the `dynamics` pool), and so does every job and automation that runs such a step (the tag
dagster.yaml limits), however it is launched."""

from __future__ import annotations

import dagster as dg

from mentor_pipeline.definitions import defs
from mentor_pipeline.resources import DYNAMICS_POOL, DYNAMICS_TAG

REPOSITORY = defs.get_repository_def()


def calls_dynamics(op: dg.OpDefinition) -> bool:
    return "dynamics" in op.required_resource_keys


def test_every_step_that_calls_dynamics_is_in_the_dynamics_pool():
    steps = {op.name: op.pool for job in REPOSITORY.get_all_jobs() for op in job.graph.iterate_op_defs()
             if calls_dynamics(op)}
    assert {"website_listing", "website_reconciliation", "force_sync", "dynamics_drift"} <= set(steps)
    assert set(steps.values()) == {DYNAMICS_POOL}, steps


def test_every_job_running_a_dynamics_step_carries_the_dynamics_tag():
    tagged = {}
    for job in REPOSITORY.get_all_jobs():
        if job.name == "__ASSET_JOB":  # Dagster's own; the pool holds its steps
            continue
        runs_dynamics = any(calls_dynamics(op) for op in job.graph.iterate_op_defs())
        tagged[job.name] = (runs_dynamics, DYNAMICS_TAG in job.tags)
    assert tagged == {
        "website_sync_job": (True, True),
        "force_sync_job": (True, True),
        "nightly_reconciliation_job": (True, True),
        "nightly_expiry_job": (False, False),
        "drift_watch_job": (True, True),
    }


def test_the_automation_that_starts_reconciliation_tags_its_runs_too():
    automation = REPOSITORY.get_sensor_def("nightly_reconciliation_automation")
    assert DYNAMICS_TAG in automation.run_tags
