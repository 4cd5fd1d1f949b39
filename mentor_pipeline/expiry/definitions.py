"""Expiry domain: certification state, reminders, auto-transitions and the nightly schedule."""

from __future__ import annotations

import dagster as dg

from mentor_pipeline.expiry.assets import (
    certification_state,
    expiry_reminders,
    nightly_expiry_job,
    nightly_expiry_schedule,
)

defs = dg.Definitions(
    assets=[certification_state, expiry_reminders],
    jobs=[nightly_expiry_job],
    schedules=[nightly_expiry_schedule],
)

__all__ = ["certification_state", "defs", "expiry_reminders", "nightly_expiry_job", "nightly_expiry_schedule"]
