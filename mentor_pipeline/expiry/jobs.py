"""The expiry domain's job: one Oslo night's expiry, run by the schedule, by hand or as a backfill."""

from __future__ import annotations

import dagster as dg

from mentor_pipeline.expiry.assets import certification_state, expired_cert_transitions, expiry_reminders

nightly_expiry_job = dg.define_asset_job(
    name="nightly_expiry_job",
    selection=[expired_cert_transitions, certification_state, expiry_reminders],
    description="Certification expiry for one night (the partition): transitions, certification state, reminders.",
)
