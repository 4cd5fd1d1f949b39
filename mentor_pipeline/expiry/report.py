"""What a nightly expiry run did, step by step: the counts and samples the SQL returns, as the
assets' metadata and the CLI's output read them (the SQL access: store.py; the run: run.py)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date

BUCKETS = ["expired", "lt_7_days", "lt_14_days", "lt_30_days", "ok", "no_certification"]


@dataclass(frozen=True)
class Transitions:
    """Mentors moved from active to expired_cert by this call."""

    by_organization: dict[str, int]
    sample_mentor_ids: list[str]

    @property
    def total(self) -> int:
        return sum(self.by_organization.values())


@dataclass(frozen=True)
class CertificationState:
    run_date: date
    # (organisation code, bucket) -> mentors
    counts: dict[tuple[str, str], int]
    # (organisation code, bucket) -> how many of those mentors are active
    active_counts: dict[tuple[str, str], int] = field(default_factory=dict)

    @property
    def active_without_certification(self) -> int:
        return sum(n for (_, bucket), n in self.active_counts.items() if bucket == "no_certification")

    def per_bucket(self) -> dict[str, int]:
        totals = Counter({bucket: 0 for bucket in BUCKETS})
        for (_, bucket), n in self.counts.items():
            totals[bucket] += n
        return dict(totals)

    def organizations(self) -> list[str]:
        return sorted({org for org, _ in self.counts})


@dataclass(frozen=True)
class Reminders:
    # (organisation code, threshold_day) -> (reminders, notifications) created by this call
    counts: dict[tuple[str, int], tuple[int, int]]
    # organisation code -> why its own thresholds are invalid (it got no reminders this run)
    skipped: dict[str, str] = field(default_factory=dict)
    # the organisations whose thresholds were fine
    thresholds_ok: list[str] = field(default_factory=list)

    @property
    def reminders(self) -> int:
        return sum(r for r, _ in self.counts.values())

    @property
    def notifications(self) -> int:
        return sum(n for _, n in self.counts.values())

    def per_threshold(self) -> dict[int, int]:
        totals: Counter[int] = Counter()
        for (_, threshold), (n, _) in self.counts.items():
            totals[threshold] += n
        return dict(sorted(totals.items(), reverse=True))


@dataclass(frozen=True)
class CertificationGaps:
    """Active mentors with no certification at all (a data gap, not an expiry)."""

    total: int
    sample: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class CertificationStateResult:
    run_date: date
    state: CertificationState
    gaps: CertificationGaps


@dataclass(frozen=True)
class ExpiryRunResult:
    run_date: date
    transitions: Transitions
    certification_state: CertificationStateResult
    reminders: Reminders
