"""Expiry domain: transitions, certification state and reminders per Oslo night, and the schedule."""

from __future__ import annotations

import dagster as dg

from mentor_pipeline.expiry.assets import certification_state, expired_cert_transitions, expiry_reminders
from mentor_pipeline.expiry.jobs import nightly_expiry_job
from mentor_pipeline.expiry.schedules import nightly_expiry_schedule

defs = dg.Definitions(
    assets=[expired_cert_transitions, certification_state, expiry_reminders],
    jobs=[nightly_expiry_job],
    schedules=[nightly_expiry_schedule],
)
