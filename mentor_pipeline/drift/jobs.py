"""The drift watch's job: one look, started by drift_watch_sensor."""

from __future__ import annotations

import dagster as dg

from mentor_pipeline.drift.assets import dynamics_drift
from mentor_pipeline.resources import dynamics_run_tags

DRIFT_WATCH_JOB = "drift_watch_job"

drift_watch_job = dg.define_asset_job(
    DRIFT_WATCH_JOB,
    selection=dg.AssetSelection.assets(dynamics_drift),  # with its checks
    description="One look of the drift watch: read what changed in Dynamics since the last look, mark the mentors "
                "whose contact differs from the rule for the drain.",
    executor_def=dg.in_process_executor,
    tags=dynamics_run_tags("drift_watch"),
)
