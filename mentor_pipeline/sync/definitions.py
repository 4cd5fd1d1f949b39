"""Website sync domain: the asset, its job and the queue sensor.

Needs the shared resources `app_db`, `dynamics` and `alerts` from the top-level definitions;
brings its own `sync_settings` (the claim/lease/retry policy).
"""

from __future__ import annotations

import dagster as dg

from mentor_pipeline.sync.assets import SyncSettings, website_listing
from mentor_pipeline.sync.sensors import sync_queue_sensor, website_sync_job

defs = dg.Definitions(
    assets=[website_listing],
    jobs=[website_sync_job],
    sensors=[sync_queue_sensor],
    resources={"sync_settings": SyncSettings()},
)
