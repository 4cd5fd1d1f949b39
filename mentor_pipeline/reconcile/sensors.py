"""Reconciliation's sensor: evaluates website_reconciliation's automation condition
(reconcile.assets.NIGHTLY): each night's run starts after that night's expiry transitions, or at
the 05:00 deadline without them."""

from __future__ import annotations

import dagster as dg

from mentor_pipeline.reconcile.assets import website_reconciliation
from mentor_pipeline.reconcile.jobs import RECONCILIATION_TAGS

nightly_reconciliation_automation = dg.AutomationConditionSensorDefinition(
    "nightly_reconciliation_automation",
    target=dg.AssetSelection.assets(website_reconciliation),
    run_tags=RECONCILIATION_TAGS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Starts the night's website_reconciliation once that night's expired_cert_transitions is "
                "materialised, or at 05:00 Oslo if the night has not been reconciled by then.",
)
