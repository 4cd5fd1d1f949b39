"""The code location `workspace.yaml` loads: merges each domain's definitions."""

from __future__ import annotations

import dagster as dg

from mentor_pipeline.resources import AppDatabase
from mentor_pipeline.sync.definitions import defs as sync_defs

core = dg.Definitions(resources={"app_db": AppDatabase()})

defs = dg.Definitions.merge(core, sync_defs)
