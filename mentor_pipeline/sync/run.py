"""The drain: claim a batch, read what the rule says now, write it through `$batch`, record the
outcome per row. Plain Python: the Dagster asset, the break-glass CLI and force sync /
reconciliation all run a `Drain`.

Level-triggered: a queue row only says "this mentor may need a write". What is written is the
rule's answer at the moment of writing (`website_desired_listing`: listed or not, and the
chapter), whatever the row's operation said when it was queued.

Protocol (docs/design/sync.md):
1. the tick marks mentors whose certification lapsed (or took effect) since the last tick;
2. claim (one committed statement: rows become 'processing' under a lease and a token);
3. read the rule for the claimed mentor keys (deleted mentors included: never listed);
4. send the writes through `client.apply_updates` (`$batch`, `If-Match: *`, never a create),
   outside any transaction, while a heartbeat thread extends the lease (429 waits can be long);
5. record the outcomes (done / retry with backoff / dead), fenced by the token; rows going back
   to pending one per transaction (`store.record_outcomes` says why).
An auth failure releases the batch untouched (pending, attempts unchanged), alerts at once and
stops the drain. Outages and throttling longer than `stall_bound` are incidents too
(mentor_pipeline/sync/health.py).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import psycopg

from mentor_pipeline.dynamics.errors import DynamicsAuthError, DynamicsError
from mentor_pipeline.dynamics.results import THROTTLED, ListingUpdate, UpdateOutcome, UpdateResult
from mentor_pipeline.operations.throttle_hold import SharedHold
from mentor_pipeline.sync import store
from mentor_pipeline.sync.health import DEFAULT_BOUND, OutageWatch
from mentor_pipeline.sync.report import DrainReport, RowOutcome
from mentor_pipeline.sync.store import DesiredListing, Outcome, QueuePolicy, QueueRow
from mentor_pipeline.vocabulary import (
    IncidentKind,
    QueueStatus,
    RowResult,
    SyncOutcome,
    TriggerEvent,
    incident_kind_for,
)

logger = logging.getLogger("mentor_pipeline.sync")

# How often a lingering drain looks for newly due changes.
POLL_INTERVAL_SECONDS = 0.25


@dataclass(frozen=True)
class Decision:
    """The write for one claimed row: the rule's answer for its mentor key now."""

    row: QueueRow
    listed: bool
    chapter: str | None = None
    reason: str | None = None  # why not listed, when not

    @property
    def update(self) -> ListingUpdate:
        return ListingUpdate(str(self.row.mentor_id), self.listed, self.chapter)


def plan_batch(rows: Sequence[QueueRow], desired: Mapping[uuid.UUID, DesiredListing]) -> list[Decision]:
    """Pure: one write per claimed row, the rule's answer for its key (a key the rule does not
    know is not listed)."""
    decisions = []
    for row in rows:
        wanted = desired.get(row.mentor_id)
        if wanted is None:
            decisions.append(Decision(row, False, None, "no longer in the app"))
        else:
            decisions.append(Decision(row, wanted.should_be_listed, wanted.chapter_name, wanted.reason))
    return decisions


class Alerts(Protocol):
    """What a drain needs from an alert sink (mentor_pipeline.operations.alerts.AlertSink fits)."""

    def alert(self, kind: str, summary: str, details: dict | None = None) -> object: ...

    def resolve(self, kind: str, summary: str) -> object: ...


def database_clock() -> None:
    """The default clock: no moment of our own, every decision takes the database's now()."""
    return None


@dataclass(frozen=True)
class Drain:
    """What every step of a drain works with: `Drain(connect, client, ...).run()` processes due
    sync_queue rows until none is due (or a limit of `run` is reached) and returns the report.

    `connect` opens a new connection to the app database (it is switched to autocommit);
    `client` is an open `DataverseClient` (anything with its `apply_updates`). Several
    drains may run at once, in threads or processes: claims never overlap.

    `alerts` hears of the incidents (None: only logged); `log` None is the sync's logger.
    `policy` is how rows are claimed, leased and retried.

    `stall_bound`: Dataverse unreachable, or throttling waits added up, for longer than this
    opens an incident (`alerts`); a batch that goes through resolves it.

    `clock` says what time it is for every decision (due, lease, backoff, the rule); the default
    is the database's now(). Tests pass a later moment instead of sleeping.
    """

    connect: Callable[[], psycopg.Connection]
    client: Any
    alerts: Alerts | None = None
    log: logging.Logger | None = None
    policy: QueuePolicy = QueuePolicy()
    stall_bound: timedelta = DEFAULT_BOUND
    clock: Callable[[], datetime | None] = database_clock

    @property
    def _log(self) -> logging.Logger:
        return self.log or logger

    def run(
        self,
        *,
        max_batches: int | None = None,
        time_budget_seconds: float | None = None,
        linger_seconds: float = 0.0,
        poll_interval_seconds: float = POLL_INTERVAL_SECONDS,
        archive: bool = True,
    ) -> DrainReport:
        """Drain what is due; returns the report.

        `linger_seconds` > 0 keeps a warm drain waiting that long after its last batch, checking
        every `poll_interval_seconds` (an index-only look at what is due), so a change that arrives
        meanwhile is written within a fraction of a second instead of waiting for a new run.
        `archive` moves finished rows past their retention to sync_queue_archive at the end.
        """
        log, clock, policy, client = self._log, self.clock, self.policy, self.client
        report = DrainReport()
        started = last_work = time.monotonic()
        conn = self.connect()
        conn.autocommit = True
        keeper = _LeaseKeeper(self.connect, policy.lease, log, clock)
        watch = OutageWatch(self.alerts, self.stall_bound, log, clock)
        stop_listening = watch.listen_to(client)
        shared_hold = SharedHold(self.connect, client, log, clock)
        try:
            # The tick first: a certification that lapsed since the last one is written in this drain.
            store.tick(conn, clock())
            while True:
                if max_batches is not None and report.batches >= max_batches:
                    report.stopped_reason = f"stopped after {max_batches} batches"
                    break
                if time_budget_seconds is not None and time.monotonic() - started > time_budget_seconds:
                    report.stopped_reason = (f"stopped after the {time_budget_seconds:.0f} s time budget; "
                                             "the sensor starts the next run")
                    break
                # A 429 that another process received (perhaps one that died since) holds us too.
                shared_hold.adopt(conn)
                token = uuid.uuid4()
                rows = store.claim_batch(conn, policy.batch_size, policy.lease, token, clock())
                if not rows:
                    if linger_seconds > 0 and self._wait_for_due(
                            conn, last_work + linger_seconds, poll_interval_seconds,
                            started + time_budget_seconds if time_budget_seconds else None):
                        continue
                    break
                report.batches += 1
                recorded_before = len(report.rows)
                with keeper.holding(token):
                    stop = self._batch(conn, rows, token, report)
                watch.after_batch(conn, report.rows[recorded_before:])
                last_work = time.monotonic()
                if stop:
                    break
            if archive:
                report.archived = store.archive_finished(conn, policy, now=clock())
            dead = report.dead_rows()
            if dead and self.alerts is not None:
                self.alerts.alert(
                    IncidentKind.SYNC_DEAD_ROWS,
                    f"{len(dead)} website sync change(s) gave up and need a person: {dead[0].reason}",
                    {"rows": [{"queue_id": r.queue_id, "mentor_id": str(r.mentor_id), "reason": r.reason}
                              for r in dead[:20]]},
                )
            watch.finished(conn)
        finally:
            stop_listening()
            shared_hold.close()
            keeper.close()
            conn.close()
        report.seconds = time.monotonic() - started
        log.info(report.summary())
        return report

    def _wait_for_due(self, conn: psycopg.Connection, until: float, interval: float, budget_end: float | None) -> bool:
        """Poll (cheaply) until something is due; False when `until` or the time budget passes first."""
        end = min(until, budget_end) if budget_end is not None else until
        while time.monotonic() < end:
            time.sleep(interval)
            if store.tick(conn, self.clock()).anything_due:
                return True
        return False

    def _batch(self, conn: psycopg.Connection, rows: list[QueueRow], token: uuid.UUID, report: DrainReport) -> bool:
        """One claimed batch, start to finish: plan, send, record, report. Returns True when the
        drain must stop."""
        clock = self.clock
        decisions = plan_batch(rows, store.desired_listing(conn, [row.mentor_id for row in rows], clock()))
        sent = self._send(conn, decisions, token, report)
        recorded = {r.id: r for r in store.record_outcomes(conn, token, list(sent.outcomes.values()), self.policy,
                                                           clock())}
        lost = []
        for d in decisions:
            answer = sent.answers.get(d.row.id)
            waits = answer.rate_limit_waits if answer else 0
            report.rate_limit_waits += waits
            row = recorded.get(d.row.id)
            if row is None:
                if answer is not None:
                    lost.append(d)
                report.rows.append(RowOutcome.of(d.row, RowResult.LEASE_LOST, d.listed,
                                                 "the lease ran out before the outcome was recorded", None, waits))
                continue
            result = _result_of(row.status, sent.outcomes[d.row.id])
            lag = ((row.processed_at - d.row.created_at).total_seconds()
                   if row.status == QueueStatus.DONE and row.processed_at else None)
            report.rows.append(RowOutcome.of(d.row, result, d.listed, row.last_error, lag, waits,
                                             attempts=row.attempts))
        if lost:
            # Another drain took these rows over after our lease ran out, and our write may
            # land after theirs. Queue one more write of whatever is right by then, so the last
            # write to Dynamics is always a fresh one.
            with conn.transaction():
                store.enqueue(conn, [d.row.mentor_id for d in lost], TriggerEvent.RECONCILIATION, now=clock())
            self._log.warning("lease lost on %d row(s); queued a fresh write for those mentors", len(lost))
        return sent.stop

    def _send(self, conn: psycopg.Connection, decisions: list[Decision], token: uuid.UUID,
              report: DrainReport) -> _Sent:
        """Write the batch to Dynamics and decide each row's outcome from what came back; a
        failure of the whole batch decides for every row (and may stop the drain)."""
        try:
            answers = self.client.apply_updates([d.update for d in decisions])
        except DynamicsAuthError as exc:
            # Nothing was written for sure and nothing is wrong with the rows: put them back
            # untouched and stop; the alert goes out now, not after N failures.
            report.auth_error = str(exc)
            report.stopped_reason = "Dynamics authentication failed"
            kind = incident_kind_for(exc)
            report.auth_incident = kind.value  # Dagster metadata takes plain strings
            self._log.error("website sync stopped: %s", exc)
            if self.alerts is not None:
                self.alerts.alert(kind, f"website sync stopped, {len(decisions)} change(s) left pending: {exc}",
                                  {"pending_rows_released": len(decisions)})
            return _Sent.all(decisions, SyncOutcome.RELEASE, f"not sent: {exc}", stop=True)
        except DynamicsError as exc:
            # Dataverse unreachable or answering garbage: every row of the batch tries again
            # later with backoff; more batches now would only meet the same wall.
            report.stopped_reason = f"Dynamics error: {exc}"
            self._log.warning("website sync batch failed, rows will be retried: %s", exc)
            return _Sent.all(decisions, SyncOutcome.RETRY, f"{type(exc).__name__}: {exc}", stop=True)
        except BaseException as exc:
            # A bug or an interrupt: record what we know (a retry that counts) instead of
            # leaving the rows to their lease, then let it propagate.
            failed = _Sent.all(decisions, SyncOutcome.RETRY, f"processor error: {type(exc).__name__}: {exc}")
            store.record_outcomes(conn, token, list(failed.outcomes.values()), self.policy, self.clock())
            raise
        answered = dict(zip((d.row.id for d in decisions), answers))
        return _Sent({d.row.id: _outcome_for(d, answered[d.row.id]) for d in decisions if d.row.id in answered},
                     answered)


@dataclass(frozen=True)
class _Sent:
    """What came of sending one batch: the outcome to record per row id, Dynamics' answer per
    row id (none when the batch failed as a whole), and whether the drain must stop."""

    outcomes: dict[int, Outcome]
    answers: dict[int, UpdateResult] = field(default_factory=dict)
    stop: bool = False

    @classmethod
    def all(cls, decisions: Sequence[Decision], outcome: SyncOutcome, error: str, *, stop: bool = False) -> _Sent:
        return cls({d.row.id: Outcome(d.row.id, outcome, error) for d in decisions}, stop=stop)


def _result_of(status: str, outcome: Outcome) -> RowResult:
    """What the report says of a recorded row: the status record_sync_outcomes left it in."""
    if status == QueueStatus.DONE:
        return RowResult.APPLIED
    if status == QueueStatus.PENDING:
        return RowResult.RELEASED if outcome.outcome == SyncOutcome.RELEASE else RowResult.RETRY
    return RowResult(status)  # dead, superseded


def _outcome_for(decision: Decision, answer: UpdateResult) -> Outcome:
    row_id = decision.row.id
    if answer.outcome == UpdateOutcome.APPLIED:
        return Outcome(row_id, SyncOutcome.DONE, listed=decision.listed, chapter=decision.chapter if decision.listed else None)
    if answer.outcome == UpdateOutcome.NOT_FOUND and not decision.listed:
        # Nothing to unlist: without a contact the website cannot show the mentor.
        return Outcome(row_id, SyncOutcome.DONE, f"no contact in Dynamics ({answer.code}): nothing to unlist", listed=False)
    if answer.outcome == UpdateOutcome.NOT_FOUND:
        return Outcome(
            row_id, SyncOutcome.DEAD,
            f"mentor {decision.row.mentor_id} has no contact in Dynamics ({answer.code}); the pipeline never "
            "creates contacts: add the contact with this mentor id in Dynamics, then force-sync the mentor",
        )
    throttled = answer.code == THROTTLED
    return Outcome(row_id, SyncOutcome.RETRY, f"{answer.code}: {answer.message}", consume_attempt=not throttled)


class _LeaseKeeper:
    """Extends the lease of the batch in flight every third of the lease, on its own connection."""

    def __init__(self, connect: Callable[[], psycopg.Connection], lease: timedelta, log: logging.Logger,
                 clock: Callable[[], datetime | None]):
        self._connect = connect
        self._lease = lease
        self._log = log
        self._clock = clock
        self._token: uuid.UUID | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None

    def holding(self, token: uuid.UUID):
        keeper = self

        class _Hold:
            def __enter__(self):
                with keeper._lock:
                    keeper._token = token
                keeper._start()

            def __exit__(self, *exc_info):
                with keeper._lock:
                    keeper._token = None

        return _Hold()

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sync-lease-keeper", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        interval = max(self._lease.total_seconds() / 3, 0.05)
        conn = None
        try:
            while not self._wake.wait(interval):
                with self._lock:
                    token = self._token
                if token is None:
                    continue
                try:
                    if conn is None or conn.closed:
                        conn = self._connect()
                        conn.autocommit = True
                    store.extend_lease(conn, token, self._lease, self._clock())
                except psycopg.Error as exc:  # the next beat tries again; the lease is the backstop
                    self._log.warning("could not extend the sync lease: %s", exc)
                    conn = None
        finally:
            if conn is not None:
                conn.close()

    def close(self) -> None:
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
