"""Drift watch domain: the `dynamics_drift` asset with its checks, its job and its sensor. Needs
the shared `app_db`, `dynamics` and `alerts`."""

from __future__ import annotations

import dagster as dg

from mentor_pipeline.drift.assets import dynamics_drift
from mentor_pipeline.drift.jobs import drift_watch_job
from mentor_pipeline.drift.sensors import drift_watch_sensor

defs = dg.Definitions(assets=[dynamics_drift], jobs=[drift_watch_job], sensors=[drift_watch_sensor])
