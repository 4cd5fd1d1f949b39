"""Operations domain: what operators see about the pipeline itself (open incidents in the UI,
alerts about failed runs). Needs the shared `app_db` and `alerts` resources."""

from __future__ import annotations

import dagster as dg

from mentor_pipeline.operations.assets import operator_incidents
from mentor_pipeline.operations.sensors import (
    dead_run_sensor,
    operator_incidents_sensor,
    run_failure_alert_sensor,
    run_success_resolve_sensor,
)

defs = dg.Definitions(
    assets=[operator_incidents],
    sensors=[dead_run_sensor, operator_incidents_sensor, run_failure_alert_sensor, run_success_resolve_sensor],
)
