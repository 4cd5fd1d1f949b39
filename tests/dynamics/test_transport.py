"""The client's httpx layers on their own: the retry transport (429 holds, 5xx backoff) over a
stand-in transport, and the bearer-token auth's one refresh after a 401."""

from __future__ import annotations

import httpx
import pytest

from mentor_pipeline.dynamics import DynamicsSettings
from mentor_pipeline.dynamics.auth import BearerTokenAuth, TokenProvider
from mentor_pipeline.dynamics.errors import DynamicsUnavailable
from mentor_pipeline.dynamics.results import ClientStats
from mentor_pipeline.dynamics.throttle import SharedThrottle
from mentor_pipeline.dynamics.transport import WHAT, RetryPolicy, RetryTransport, rate_limit_waits

SETTINGS = DynamicsSettings(url="https://hlf.crm4.dynamics.com", tenant_id="t", client_id="c", client_secret="s")


def answers(*statuses: int, retry_after: str = "7"):
    """A stand-in transport answering with `statuses` in turn; the headers of what it saw."""
    seen: list[httpx.Headers] = []  # each send's headers (a resent request is the same object)
    left = list(statuses)

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(httpx.Headers(request.headers))
        status = left.pop(0)
        return httpx.Response(status, headers={"Retry-After": retry_after} if status == 429 else {}, json={})

    return httpx.MockTransport(handle), seen


def test_a_429_holds_the_shared_throttle_for_its_retry_after_and_the_response_counts_the_wait():
    slept, stats = [], ClientStats()
    inner, seen = answers(429, 200)
    throttle = SharedThrottle(slept.append, clock=lambda: 0.0)
    with httpx.Client(transport=RetryTransport(inner, RetryPolicy(), stats, sleep=slept.append,
                                               throttle=throttle)) as http:
        response = http.get("https://x/api", extensions={WHAT: "WhoAmI"})
    assert response.status_code == 200 and rate_limit_waits(response) == 1
    assert slept == [7.0] and len(seen) == 2
    assert (stats.requests, stats.rate_limit_waits, stats.retries) == (2, 1, 0)


def test_5xx_is_resent_with_backoff_then_reported_unavailable_naming_the_request():
    slept, stats = [], ClientStats()
    inner, seen = answers(503, 503, 503)
    policy = RetryPolicy(max_retries=2, backoff_base=0.01, backoff_max=0.02)
    with httpx.Client(transport=RetryTransport(inner, policy, stats, sleep=slept.append)) as http:
        with pytest.raises(DynamicsUnavailable, match="Dataverse answered HTTP 503 to WhoAmI 3 times in a row"):
            http.get("https://x/api", extensions={WHAT: "WhoAmI"})
    assert len(seen) == 3 and len(slept) == 2 and stats.retries == 2


def test_the_auth_fetches_a_new_token_once_after_a_401():
    issued = []

    def token_endpoint(request: httpx.Request) -> httpx.Response:
        issued.append(f"t{len(issued) + 1}")
        return httpx.Response(200, json={"access_token": issued[-1], "expires_in": 3599})

    inner, seen = answers(200, 401, 200, 401, 401)
    provider = TokenProvider(SETTINGS, httpx.Client(transport=httpx.MockTransport(token_endpoint)))
    with httpx.Client(transport=inner, auth=BearerTokenAuth(provider)) as http:
        assert http.get("https://x/api").status_code == 200
        assert http.get("https://x/api").status_code == 200  # 401: a new token, sent again
        # A second 401 in a row is handed back (the client raises the auth error), not retried again.
        assert http.get("https://x/api").status_code == 401
    assert [headers["Authorization"] for headers in seen] == ["Bearer t1", "Bearer t1", "Bearer t2",
                                                          "Bearer t2", "Bearer t3"]
