"""The words the pipeline and its SQL share: queue statuses, outcomes, trigger events,
reconciliation classifications and incident kinds, one StrEnum each; and the drain's report of
what became of each row (`RowResult`), which the sync, reconciliation and the CLI read.

Each SQL list has its own home (a check constraint or a function in supabase/schemas/);
tests/db/test_vocabulary.py reads them from a migrated database and fails when one of them and
its enum here differ. SQL text keeps its literals (`status = 'pending'`): a partial index is
only used when a query repeats its predicate literally.
"""

from __future__ import annotations

from enum import StrEnum, nonmember

from mentor_pipeline.dynamics.errors import (
    DynamicsAuthError,
    DynamicsConfigError,
    DynamicsError,
    ExpiredClientSecret,
    InvalidClientSecret,
)


class QueueStatus(StrEnum):
    """sync_queue.status (sync_queue_status_check)."""

    PENDING = "pending"  # waits for a drain, due at available_at
    PROCESSING = "processing"  # claimed: a drain holds its lease
    DONE = "done"
    DEAD = "dead"  # gave up: needs a person
    SUPERSEDED = "superseded"  # a newer row of the same mentor carries the change

    # A change is waiting: queued or in flight (sync_change_waiting() in SQL).
    WAITING = nonmember((PENDING, PROCESSING))


class SyncOutcome(StrEnum):
    """What a drain records for a claimed row (record_sync_outcomes decides the new status)."""

    DONE = "done"
    RETRY = "retry"  # pending again after a backoff, or dead after the last attempt
    DEAD = "dead"
    SUPERSEDED = "superseded"
    RELEASE = "release"  # not sent (sign-in failed): pending again, attempts unchanged

    # Outcomes that can put the row back to pending.
    BACK_TO_PENDING = nonmember((RETRY, RELEASE))


class RowResult(StrEnum):
    """What a drain reports for each claimed row (`RowOutcome.result`): the status the outcome
    left the row in, in the words of the drain's report. Python's own: no SQL column holds it."""

    APPLIED = "applied"  # done: the write went through (or there was no contact to unlist)
    SUPERSEDED = "superseded"  # a newer row of the same mentor carries the change: nothing to write
    RETRY = "retry"  # pending again, tried later
    DEAD = "dead"  # gave up: needs a person
    RELEASED = "released"  # not sent (sign-in failed): pending again, untouched
    LEASE_LOST = "lease_lost"  # another drain took the row over before the outcome was recorded


class TriggerEvent(StrEnum):
    """Why a sync_queue row exists: sync_queue.triggered_by_event (sync_trigger_events())."""

    STATUS_CHANGE = "status_change"
    MANUAL_COORDINATOR_ACTION = "manual_coordinator_action"
    NIGHTLY_EXPIRY = "nightly_expiry"
    RECONCILIATION = "reconciliation"
    FORCE_SYNC = "force_sync"
    CERTIFICATION_CHANGE = "certification_change"
    CERTIFICATION_LAPSED = "certification_lapsed"
    MENTOR_DELETED = "mentor_deleted"
    ORGANIZATION_CHANGE = "organization_change"
    CHAPTER_CHANGE = "chapter_change"
    DYNAMICS_DRIFT = "dynamics_drift"  # the drift watch saw Dynamics differ from the rule


class Classification(StrEnum):
    """reconciliation_log.classification (reconciliation_log_classification_check), in the
    order reports list them."""

    LISTED_BUT_SHOULD_NOT = "listed_but_should_not"
    MISSING_BUT_SHOULD = "missing_but_should"
    CHAPTER_DIFFERS = "chapter_differs"  # listed as it should be, under another chapter
    CONTACT_ABSENT = "contact_absent"
    # Listed contacts with no mentor of a syncing organisation behind them:
    LISTED_MENTOR_GONE = "listed_mentor_gone"  # the mentor key no longer exists in the app
    LISTED_WITHOUT_SYNC = "listed_without_website_sync"  # the mentor's organisation has no website sync
    IN_SYNC = "in_sync"
    FORCED = "forced"  # a force sync's row: written whatever Dynamics showed


class DriftField(StrEnum):
    """dynamics_drift.field (dynamics_drift_field_check): what differed from the rule."""

    LISTED = "listed"
    CHAPTER = "chapter"
    DELETED = "deleted"  # the contact was deleted in Dynamics


class DriftAction(StrEnum):
    """dynamics_drift.action (dynamics_drift_action_check): what the watch did about it."""

    QUEUED = "queued"
    LEFT_TO_QUEUE = "left_to_queue"
    FIGHTING = "fighting"


class IncidentKind(StrEnum):
    """incidents.kind: what operators are alerted about (docs/operations.md, *Alerts*)."""

    DYNAMICS_AUTH_WRONG_SECRET = "dynamics_auth_wrong_secret"
    DYNAMICS_AUTH_EXPIRED_SECRET = "dynamics_auth_expired_secret"
    DYNAMICS_AUTH_FAILED = "dynamics_auth_failed"  # any other refused sign-in
    DYNAMICS_NOT_CONFIGURED = "dynamics_not_configured"
    DYNAMICS_UNREACHABLE = "dynamics_unreachable"
    DYNAMICS_THROTTLED = "dynamics_throttled"
    SYNC_DEAD_ROWS = "sync_dead_rows"
    WEBSITE_STALE = "website_stale"
    RUN_FAILED = "run_failed"  # scope: the job
    RECONCILIATION_DUPLICATES = "reconciliation_duplicates"
    EXPIRY_THRESHOLDS_INVALID = "expiry_thresholds_invalid"  # scope: the organisation
    CHANGE_TRACKING_OFF = "dynamics_change_tracking_off"  # the drift watch cannot read changes
    DRIFT_FIGHT = "dynamics_drift_fight"  # scope: the mentor; something keeps changing it back

    # While one of these is open, sync_queue_sensor starts no drain (each would fail the same
    # way) and re-checks the credentials now and then instead.
    SIGN_IN = nonmember((DYNAMICS_AUTH_WRONG_SECRET, DYNAMICS_AUTH_EXPIRED_SECRET, DYNAMICS_AUTH_FAILED))


def incident_kind_for(exc: DynamicsError) -> IncidentKind:
    """The incident a Dynamics failure is: a refused sign-in names its cause when Entra ID says it."""
    match exc:
        case InvalidClientSecret():
            return IncidentKind.DYNAMICS_AUTH_WRONG_SECRET
        case ExpiredClientSecret():
            return IncidentKind.DYNAMICS_AUTH_EXPIRED_SECRET
        case DynamicsAuthError():
            return IncidentKind.DYNAMICS_AUTH_FAILED
        case DynamicsConfigError():
            return IncidentKind.DYNAMICS_NOT_CONFIGURED
        case _:
            return IncidentKind.DYNAMICS_UNREACHABLE
