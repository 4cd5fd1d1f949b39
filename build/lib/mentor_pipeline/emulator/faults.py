"""Faults on demand for tests and demos: 5xx answers, latency, hangs, malformed bodies."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field

MALFORMED_KINDS = ("html", "truncated_json", "missing_value", "foreign_next_link")


@dataclass
class Faults:
    error_rate: float = 0.0  # share of Web API requests answered with error_status
    error_status: int = 503
    latency: float = 0.0  # seconds added to every Web API request
    timeout_rate: float = 0.0  # share of requests that hang for hang_seconds (client times out)
    hang_seconds: float = 30.0
    fail_next: int = 0  # the next N Web API requests answer error_status (deterministic)
    timeout_next: int = 0  # the next N Web API requests hang
    malformed_next: list[str] = field(default_factory=list)  # kinds, applied to the next requests in order

    def as_dict(self) -> dict:
        return asdict(self)


class FaultInjector:
    def __init__(self, seed: int = 0):
        self.faults = Faults()
        self._random = random.Random(seed)

    def update(self, changes: dict) -> Faults:
        allowed = set(Faults.__dataclass_fields__)
        unknown = set(changes) - allowed
        if unknown:
            raise ValueError(f"unknown fault(s): {', '.join(sorted(unknown))}; known: {', '.join(sorted(allowed))}")
        for kind in changes.get("malformed_next", []):
            if kind not in MALFORMED_KINDS:
                raise ValueError(f"unknown malformed kind {kind!r}; known: {', '.join(MALFORMED_KINDS)}")
        for name, value in changes.items():
            setattr(self.faults, name, value)
        return self.faults

    def reset(self) -> None:
        self.faults = Faults()

    def take_error(self) -> int | None:
        return self.faults.error_status if self._take("fail_next", "error_rate") else None

    def take_hang(self) -> float | None:
        return self.faults.hang_seconds if self._take("timeout_next", "timeout_rate") else None

    def _take(self, countdown: str, rate: str) -> bool:
        """Deterministic faults (the next N requests) first, then the random share."""
        left = getattr(self.faults, countdown)
        if left > 0:
            setattr(self.faults, countdown, left - 1)
            return True
        share = getattr(self.faults, rate)
        return bool(share) and self._random.random() < share

    def take_malformed(self) -> str | None:
        return self.faults.malformed_next.pop(0) if self.faults.malformed_next else None
