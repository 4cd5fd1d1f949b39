"""One nightly expiry run for one run date, in the order the Dagster job runs it.

1. auto-transition: active mentors whose most recent certification lapsed -> expired_cert
2. certification state snapshot (after the transitions, so it shows the statuses that hold)
3. reminders and coordinator notifications

Each step is its own transaction and is idempotent, so a run killed anywhere is finished by
running it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import psycopg

from mentor_pipeline.expiry import store


@dataclass(frozen=True)
class CertificationStateResult:
    run_date: date
    transitions: store.Transitions
    state: store.CertificationState
    gaps: store.CertificationGaps


@dataclass(frozen=True)
class ExpiryRunResult:
    certification_state: CertificationStateResult
    reminders: store.Reminders

    @property
    def run_date(self) -> date:
        return self.certification_state.run_date


def apply_certification_state(conn: psycopg.Connection, run_date: date) -> CertificationStateResult:
    transitions = store.expire_lapsed_mentors(conn, run_date)
    state = store.refresh_certification_state(conn, run_date)
    gaps = store.certification_gaps(conn, total=state.active_without_certification)
    return CertificationStateResult(run_date=run_date, transitions=transitions, state=state, gaps=gaps)


def run_nightly_expiry(conn: psycopg.Connection, run_date: date) -> ExpiryRunResult:
    certification_state = apply_certification_state(conn, run_date)
    reminders = store.create_reminders(conn, run_date)
    return ExpiryRunResult(certification_state=certification_state, reminders=reminders)
