"""What the pipeline asks Dataverse to do, and what came of it, per mentor."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields
from enum import Enum


class UpdateOutcome(str, Enum):
    APPLIED = "applied"
    NOT_FOUND = "not_found"  # no contact with this mentor id: reported, never created
    FAILED = "failed"


# Codes of FAILED results the client makes itself (Dataverse's own codes are hex, e.g. 0x80040217).
UNAVAILABLE = "unavailable"  # 5xx answers or timeouts outlasted the retries
THROTTLED = "throttled"  # still 429 after the client's cap on Retry-After waits: not the row's fault


def unavailable_code(status: int | None) -> str:
    return THROTTLED if status == 429 else UNAVAILABLE


@dataclass(frozen=True)
class ListingUpdate:
    """One contact's listing: the flag, and with a listing the chapter the page groups it under."""

    mentor_id: str
    listed: bool
    chapter: str | None = None


@dataclass(frozen=True)
class UpdateResult:
    mentor_id: str
    outcome: UpdateOutcome
    code: str | None = None
    message: str | None = None
    # 429 waits the request carrying this update went through; never a failure.
    rate_limit_waits: int = 0


@dataclass
class ClientStats:
    """Counters for tests, the benchmark and run metadata. Thread-safe increments."""

    requests: int = 0  # HTTP requests sent to the Web API (a $batch counts once)
    token_requests: int = 0
    batches: int = 0
    operations: int = 0  # updates sent, inside or outside $batch, resends included
    rate_limit_waits: int = 0
    rate_limit_wait_seconds: float = 0.0
    retries: int = 0  # resends after a 5xx, a timeout or a transport error
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **amounts: float) -> None:
        with self._lock:
            for name, amount in amounts.items():
                setattr(self, name, getattr(self, name) + amount)

    def as_dict(self) -> dict[str, float]:
        with self._lock:
            return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}
