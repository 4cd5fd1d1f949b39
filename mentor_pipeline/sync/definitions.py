"""Website sync domain: the asset, its job, its freshness check and the sensors.

Needs the shared resources `app_db`, `dynamics` and `alerts` from the top-level definitions;
brings its own `sync_settings` (the claim/lease/retry policy and the alerting bounds, which the
MENTOR_PIPELINE_*_MINUTES variables can set: see mentor_pipeline.resources.sync_settings_from_env).
"""

from __future__ import annotations

import dagster as dg

from mentor_pipeline.resources import sync_settings_from_env
from mentor_pipeline.sync.assets import website_listing
from mentor_pipeline.sync.checks import no_due_change_waits_too_long
from mentor_pipeline.sync.jobs import website_sync_job
from mentor_pipeline.sync.sensors import sync_queue_sensor, website_sync_health_sensor

defs = dg.Definitions(
    assets=[website_listing],
    asset_checks=[no_due_change_waits_too_long],
    jobs=[website_sync_job],
    sensors=[sync_queue_sensor, website_sync_health_sensor],
    resources={"sync_settings": sync_settings_from_env()},
)
