"""Dataverse service protection limits, evaluated per user as Microsoft documents them.

Requests and combined execution time count in a sliding window (300 s by default); concurrent
requests are refused at once. A refused request gets 429 with `Retry-After` in seconds and the
documented hex code. Refused requests are not counted (an assumption: Microsoft does not say).
"""

from __future__ import annotations

import math
from collections import defaultdict, deque
from dataclasses import dataclass

from mentor_pipeline.emulator.clock import Clock

# Microsoft does not document the Retry-After for the concurrency limit; a slot frees up as
# soon as any in-flight request ends, so a short wait is the honest approximation.
CONCURRENCY_RETRY_AFTER = 1


@dataclass(frozen=True)
class Rejection:
    code: str
    message: str
    retry_after: int


class ServiceProtection:
    def __init__(self, clock: Clock, request_limit: int, window_seconds: float,
                 execution_time_limit: float, concurrency_limit: int):
        self.clock = clock
        self.request_limit = request_limit
        self.window_seconds = window_seconds
        self.execution_time_limit = execution_time_limit
        self.concurrency_limit = concurrency_limit
        self._requests: dict[str, deque[float]] = defaultdict(deque)
        self._execution: dict[str, deque[tuple[float, float]]] = defaultdict(deque)
        self._in_flight: dict[str, int] = defaultdict(int)
        self.rejections = 0

    def reset(self) -> None:
        self._requests.clear()
        self._execution.clear()

    def admit(self, user: str) -> Rejection | None:
        now = self.clock.now()
        self._prune(user, now)
        rejection = self._check(user, now)
        if rejection is not None:
            self.rejections += 1
            return rejection
        self._requests[user].append(now)
        self._in_flight[user] += 1
        return None

    @property
    def in_flight(self) -> int:
        """Requests admitted and not yet answered, all users (the admin state shows it)."""
        return sum(self._in_flight.values())

    def release(self, user: str, execution_seconds: float) -> None:
        self._in_flight[user] -= 1
        self._execution[user].append((self.clock.now(), execution_seconds))

    def _check(self, user: str, now: float) -> Rejection | None:
        if self._in_flight[user] >= self.concurrency_limit:
            return Rejection("0x80072326",
                             f"Number of concurrent requests exceeded the limit of {self.concurrency_limit}.",
                             CONCURRENCY_RETRY_AFTER)
        times = self._requests[user]
        if len(times) >= self.request_limit:
            # Wait until enough of the oldest requests have left the window.
            frees_at = times[len(times) - self.request_limit] + self.window_seconds
            return Rejection("0x80072322",
                             f"Number of requests exceeded the limit of {self.request_limit} over time window "
                             f"of {self.window_seconds:g} seconds.",
                             _seconds(frees_at - now))
        spent = sum(d for _, d in self._execution[user])
        if spent >= self.execution_time_limit:
            frees_at = self._execution[user][0][0] + self.window_seconds
            return Rejection("0x80072321",
                             "Combined execution time of incoming requests exceeded limit of "
                             f"{self.execution_time_limit * 1000:,.0f} milliseconds over time window of "
                             f"{self.window_seconds:g} seconds. Decrease number of concurrent requests or reduce "
                             "the duration of requests and try again later.",
                             _seconds(frees_at - now))
        return None

    def _prune(self, user: str, now: float) -> None:
        start = now - self.window_seconds
        times, execution = self._requests[user], self._execution[user]
        while times and times[0] <= start:
            times.popleft()
        while execution and execution[0][0] <= start:
            execution.popleft()


def _seconds(value: float) -> int:
    return max(1, math.ceil(value))
