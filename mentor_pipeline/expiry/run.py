"""One nightly expiry run for one run date, in the order the Dagster job runs it.

1. auto-transition: active mentors whose most recent certification lapsed -> expired_cert
   (`expired_cert_transitions`)
2. certification state snapshot, after the transitions so it shows the statuses that hold
   (`certification_state`)
3. reminders and coordinator notifications (`expiry_reminders`)

Each step is its own transaction and is idempotent, so a run killed anywhere is finished by
running it again.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING

import psycopg

from mentor_pipeline.expiry import store
from mentor_pipeline.expiry.report import CertificationStateResult, ExpiryRunResult, Reminders
from mentor_pipeline.text import plain
from mentor_pipeline.vocabulary import IncidentKind

if TYPE_CHECKING:  # the CLI imports this module without Dagster
    from mentor_pipeline.operations.alerts import AlertSink


def snapshot_certification_state(conn: psycopg.Connection, run_date: date) -> CertificationStateResult:
    state = store.refresh_certification_state(conn, run_date)
    gaps = store.certification_gaps(conn, total=state.active_without_certification)
    return CertificationStateResult(run_date=run_date, state=state, gaps=gaps)


def run_nightly_expiry(conn: psycopg.Connection, run_date: date, *, sent_on: date | None = None) -> ExpiryRunResult:
    """`sent_on`: the day the reminders go out (default today); see create_expiry_reminders."""
    transitions = store.expire_lapsed_mentors(conn, run_date)
    certification_state = snapshot_certification_state(conn, run_date)
    reminders = store.create_reminders(conn, run_date, sent_on)
    return ExpiryRunResult(run_date=run_date, transitions=transitions,
                           certification_state=certification_state, reminders=reminders)


def skipped_organization_summary(organization: str, problem: str) -> str:
    organization, problem = plain(organization), plain(problem)
    return (f"no expiry reminders for {organization}: its thresholds are invalid ({problem});"
            f" other organisations ran as usual. Fix expiry_threshold_config for {organization}.")


def alert_skipped_organizations(reminders: Reminders, alerts: "AlertSink", warn: Callable[[str], None]) -> None:
    """One warning and one incident per organisation whose own thresholds were skipped (invalid);
    the incident of an organisation whose thresholds are fine again is resolved."""
    for organization, problem in reminders.skipped.items():
        summary = skipped_organization_summary(organization, problem)
        warn(summary)
        alerts.alert(IncidentKind.EXPIRY_THRESHOLDS_INVALID, summary, {"organization": organization, "problem": problem},
                     scope=organization)
    for organization in reminders.thresholds_ok:
        alerts.resolve(IncidentKind.EXPIRY_THRESHOLDS_INVALID, f"the expiry thresholds of {plain(organization)} are valid again",
                       scope=organization)
