"""What a drain did, per row and in total: the asset's metadata, the CLI's output, the bench's figures."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field

from mentor_pipeline import markdown
from mentor_pipeline.sync.store import QueueRow
from mentor_pipeline.vocabulary import RowResult


@dataclass(frozen=True)
class RowOutcome:
    queue_id: int
    mentor_id: uuid.UUID
    operation: str
    triggered_by_event: str
    result: RowResult
    listed: bool | None
    reason: str | None
    lag_seconds: float | None  # enqueue -> confirmed write, for applied rows
    rate_limit_waits: int = 0
    attempts: int = 0

    @classmethod
    def of(cls, row: QueueRow, result: RowResult, listed: bool | None, reason: str | None, lag: float | None,
           waits: int, *, attempts: int | None = None) -> RowOutcome:
        return cls(row.id, row.mentor_id, row.operation, row.triggered_by_event, result, listed, reason, lag,
                   waits, row.attempts if attempts is None else attempts)


@dataclass
class DrainReport:
    rows: list[RowOutcome] = field(default_factory=list)
    batches: int = 0
    rate_limit_waits: int = 0
    archived: int = 0
    seconds: float = 0.0
    auth_error: str | None = None
    auth_incident: str | None = None  # the incident kind the auth failure was alerted as
    stopped_reason: str | None = None

    def count(self, result: RowResult) -> int:
        return sum(1 for row in self.rows if row.result == result)

    @property
    def applied(self) -> int:
        return self.count(RowResult.APPLIED)

    @property
    def superseded(self) -> int:
        return self.count(RowResult.SUPERSEDED)

    @property
    def retried(self) -> int:
        return self.count(RowResult.RETRY)

    @property
    def dead(self) -> int:
        return self.count(RowResult.DEAD)

    def dead_rows(self) -> list:
        """The rows that gave up in this drain and need a person."""
        return [row for row in self.rows if row.result == RowResult.DEAD]

    @property
    def released(self) -> int:
        return self.count(RowResult.RELEASED)

    def lag_percentiles(self) -> dict[str, float | None]:
        lags = sorted(row.lag_seconds for row in self.rows if row.lag_seconds is not None)
        return {"p50": percentile(lags, 50), "p95": percentile(lags, 95), "max": lags[-1] if lags else None}

    def summary(self) -> str:
        lag = self.lag_percentiles()
        text = (f"website sync: {self.applied} applied, {self.superseded} superseded, {self.retried} to retry, "
                f"{self.dead} dead, {self.released} released in {self.batches} batch(es), {self.seconds:.1f} s")
        if lag["p95"] is not None:
            text += f"; lag p50 {lag['p50']:.2f} s, p95 {lag['p95']:.2f} s, max {lag['max']:.2f} s"
        if self.stopped_reason:
            text += f"; {self.stopped_reason}"
        return text

    def changes_markdown(self, limit: int = 50) -> str:
        """A small table of the changes (first `limit` rows) for the Dagster UI."""
        rows = [[row.queue_id, markdown.Code(row.mentor_id), row.operation, row.triggered_by_event, row.result,
                 "" if row.listed is None else ("yes" if row.listed else "no"),
                 "" if row.lag_seconds is None else f"{row.lag_seconds:.2f}", row.reason]
                for row in self.rows[:limit]]
        return markdown.table(["queue id", "mentor", "operation", "event", "result", "listed", "lag (s)", "note"],
                              rows, right={"queue id", "lag (s)"}, total=len(self.rows),
                              empty="_No queued changes were due._")


def percentile(sorted_values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]
