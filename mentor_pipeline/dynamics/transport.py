"""Retries in httpx's transport layer: a `RetryTransport` wraps the real one (Microsoft's "Service
protection API limits" guidance).

- 429: wait the full Retry-After, then resend. Never a failure, never uses the retry budget
  (only `max_rate_limit_waits` caps it). With a `SharedThrottle` the wait holds every request of
  the client, not one worker: Dataverse's limit is per user (mentor_pipeline/dynamics/throttle.py).
  Without one (Entra ID's token endpoint, another service) only this request waits.
- 5xx, timeouts, dropped connections: exponential backoff with jitter, at most `max_retries`
  resends, then `DynamicsUnavailable` with the last error.

A request names itself for the messages with the `WHAT` extension; the response carries the 429
waits it took in the `RATE_LIMIT_WAITS` extension.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from mentor_pipeline.dynamics.errors import DynamicsUnavailable
from mentor_pipeline.dynamics.results import ClientStats
from mentor_pipeline.dynamics.throttle import LOG_WAITS_OVER_SECONDS, SharedThrottle

logger = logging.getLogger("mentor_pipeline.dynamics")

WHAT = "mentor_pipeline.what"  # request extension: what the request is, e.g. "WhoAmI"
RATE_LIMIT_WAITS = "mentor_pipeline.rate_limit_waits"  # response extension: the 429 waits it took


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 4
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    max_rate_limit_waits: int = 100

    def backoff_delay(self, attempt: int) -> float:
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)  # jitter spreads resends of parallel workers


def retry_after(headers: httpx.Headers | dict) -> float | None:
    value = headers.get("retry-after") or headers.get("Retry-After")
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None  # HTTP-date form is not used by Dataverse; fall back to backoff
    return seconds if seconds >= 0 else None


def rate_limit_waits(response: httpx.Response) -> int:
    return response.extensions.get(RATE_LIMIT_WAITS, 0)


class RetryTransport(httpx.BaseTransport):
    def __init__(self, transport: httpx.BaseTransport, policy: RetryPolicy, stats: ClientStats, *,
                 sleep: Callable[[float], None], throttle: SharedThrottle | None = None,
                 service: str = "Dataverse", counter: str = "requests"):
        self._transport = transport
        self.policy = policy
        self._stats = stats
        self._sleep = sleep
        self._throttle = throttle
        self._service = service
        self._counter = counter  # the ClientStats field each send adds one to

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        what = request.extensions.get(WHAT) or f"{request.method} {request.url.path}"
        service = self._service
        failures = 0
        waits = 0
        while True:
            if self._throttle is not None:
                # A 429 seen by any worker holds every request of this client.
                self._throttle.wait()
            self._stats.add(**{self._counter: 1})
            try:
                response = self._transport.handle_request(request)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                failures += 1
                problem = "timed out" if isinstance(exc, httpx.TimeoutException) else f"failed ({type(exc).__name__})"
                if failures > self.policy.max_retries:
                    raise DynamicsUnavailable(
                        f"{what} {problem} {failures} times in a row: {service} is not answering; "
                        "the pipeline will retry on its next run.", rate_limit_waits=waits) from None
                self._stats.add(retries=1)
                self.pause(self.policy.backoff_delay(failures), what, f"{problem} ({service})")
                continue
            status = response.status_code
            if status == 429:
                response.read()  # frees the connection for the resend
                waits += 1
                if waits > self.policy.max_rate_limit_waits:
                    raise DynamicsUnavailable(
                        f"{what} was still throttled (429) after {waits - 1} waits: lower max_in_flight "
                        "or spread the work over time.", status=429, rate_limit_waits=waits - 1)
                delay = retry_after(response.headers) or self.policy.backoff_delay(waits)
                self._stats.add(rate_limit_waits=1, rate_limit_wait_seconds=delay)
                if self._throttle is not None:
                    self._throttle.hold(delay, what)  # waited out at the top of the loop
                else:
                    self.pause(delay, what, f"HTTP 429 from {service}")
                continue
            if status >= 500:
                response.read()
                failures += 1
                if failures > self.policy.max_retries:
                    raise DynamicsUnavailable(
                        f"{service} answered HTTP {status} to {what} {failures} times in a row: the service "
                        "is unavailable; the pipeline will retry on its next run.",
                        status=status, rate_limit_waits=waits)
                self._stats.add(retries=1)
                self.pause(self.policy.backoff_delay(failures), what, f"HTTP {status} from {service}")
                continue
            response.extensions[RATE_LIMIT_WAITS] = waits
            return response

    def pause(self, seconds: float, what: str, why: str) -> None:
        """One worker's wait before resending after a failure (not a throttle: others go on)."""
        if seconds > LOG_WAITS_OVER_SECONDS:
            logger.warning("%s: %s; resending in %.0f s", what, why, seconds)
        self._sleep(seconds)

    def close(self) -> None:
        self._transport.close()
