"""Reconciliation domain: the nightly `website_reconciliation` asset (one Oslo night per
partition) with its checks, job and automation, and the force sync job. Needs the shared
`app_db`, `dynamics`, `alerts`, the sync domain's `sync_settings`, and the expiry domain's
`expired_cert_transitions` upstream.
"""

from __future__ import annotations

import dagster as dg

from mentor_pipeline.reconcile.assets import website_reconciliation
from mentor_pipeline.reconcile.checks import reconciliation_checks
from mentor_pipeline.reconcile.jobs import force_sync_job, nightly_reconciliation_job
from mentor_pipeline.reconcile.sensors import nightly_reconciliation_automation

defs = dg.Definitions(
    assets=[website_reconciliation],
    asset_checks=reconciliation_checks,
    jobs=[nightly_reconciliation_job, force_sync_job],
    sensors=[nightly_reconciliation_automation],
)
