"""The code location bench_lag.py loads: the shared resources (from the environment) plus the
website sync domain (and the drift watch with BENCH_LAG_DRIFT=1). Independent of how
mentor_pipeline/definitions.py wires the rest."""

import os

import dagster as dg

from mentor_pipeline.drift.definitions import defs as drift_defs
from mentor_pipeline.operations.alerts import AlertSink
from mentor_pipeline.resources import AppDatabase, dynamics_from_env
from mentor_pipeline.sync.definitions import defs as sync_defs

defs = dg.Definitions.merge(
    dg.Definitions(resources={"app_db": AppDatabase(), "dynamics": dynamics_from_env(), "alerts": AlertSink()}),
    sync_defs,
    *([drift_defs] if os.environ.get("BENCH_LAG_DRIFT") == "1" else []),
)
