"""The website sync's job: one drain of sync_queue into Dynamics, started by sync_queue_sensor."""

from __future__ import annotations

import dagster as dg

from mentor_pipeline.resources import dynamics_run_tags
from mentor_pipeline.sync.assets import WEBSITE_SYNC_JOB, website_listing

website_sync_job = dg.define_asset_job(
    WEBSITE_SYNC_JOB,
    # The asset checks (divergence, stale dead rows, duplicates) belong to the nightly run;
    # the event-driven drain is latency-sensitive.
    selection=dg.AssetSelection.assets(website_listing).without_checks(),
    description="Drain sync_queue into Dynamics: every due status change, in $batch requests.",
    # Latency-sensitive: one process, no per-step subprocess (about 1.5 s saved per run).
    executor_def=dg.in_process_executor,
    tags=dynamics_run_tags("website_sync"),
)
