"""The code location `workspace.yaml` loads: merges each domain's definitions."""

from __future__ import annotations

import os

import dagster as dg

from mentor_pipeline.drift.definitions import defs as drift_defs
from mentor_pipeline.expiry.definitions import defs as expiry_defs
from mentor_pipeline.operations.alerts import AlertSink, reminder_minutes_from_env
from mentor_pipeline.operations.definitions import defs as operations_defs
from mentor_pipeline.reconcile.definitions import defs as reconcile_defs
from mentor_pipeline.resources import AppDatabase, dynamics_from_env
from mentor_pipeline.settings import ALERT_WEBHOOK_URL
from mentor_pipeline.sync.definitions import defs as sync_defs

# Resources every domain shares. Secrets resolve from the environment at run time (EnvVar),
# so they never show in run config or the UI.
core = dg.Definitions(
    resources={
        "app_db": AppDatabase(),
        "dynamics": dynamics_from_env(),
        "alerts": AlertSink(webhook_url=dg.EnvVar(ALERT_WEBHOOK_URL.name) if os.environ.get(ALERT_WEBHOOK_URL.name) else "",
                            reminder_minutes=reminder_minutes_from_env()),
    }
)

defs = dg.Definitions.merge(core, sync_defs, expiry_defs, reconcile_defs, operations_defs, drift_defs)
