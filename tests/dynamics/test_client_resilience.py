"""429 storms, 5xx and timeouts: waits are honoured and counted, failures retried then reported."""

from __future__ import annotations

import pytest

from mentor_pipeline.dynamics import ListingUpdate, UpdateOutcome
from mentor_pipeline.dynamics.errors import DynamicsUnavailable
from mentor_pipeline.dynamics.results import THROTTLED, UNAVAILABLE


def test_429_storm_waits_the_full_retry_after_and_never_fails(emulator, recording_sleep):
    emulator.admin.seed(30)
    emulator.admin.configure(request_limit=10)
    with emulator.client(sleep=recording_sleep, max_in_flight=1) as client:
        results = [client.set_listed(f"m{n:06d}", False) for n in range(1, 31)]
        stats = client.stats.as_dict()
    assert all(r.outcome is UpdateOutcome.APPLIED for r in results)
    throttled = [e for e in emulator.admin.requests() if e["status"] == 429]
    assert len(throttled) == 2  # after request 10 and after request 20
    assert stats["rate_limit_waits"] == 2 and stats["retries"] == 0
    assert sum(r.rate_limit_waits for r in results) == 2
    # Every wait is the full Retry-After the emulator sent (window 300 s, so close to 300 s).
    assert len(recording_sleep.calls) == 2 and all(290 <= s <= 300 for s in recording_sleep.calls)
    assert {c["mentor_id"]: c["listed"] for c in emulator.admin.contacts()} == {f"m{n:06d}": False for n in range(1, 31)}


def test_429_on_batches_resends_the_same_operations(emulator, recording_sleep):
    emulator.admin.seed(40)
    emulator.admin.configure(request_limit=2)
    updates = [ListingUpdate(f"m{n:06d}", False) for n in range(1, 41)]
    with emulator.client(sleep=recording_sleep, batch_size=10, max_in_flight=1) as client:
        results = client.apply_updates(updates)
    assert all(r.outcome is UpdateOutcome.APPLIED for r in results)
    assert client.stats.rate_limit_waits == len(recording_sleep.calls) >= 1
    # Each operation applied exactly once: throttled batches were refused whole, then resent.
    parts = [e for e in emulator.admin.requests() if e["batch"]]
    assert sorted(p["path"] for p in parts) == sorted(
        f"/api/data/v9.2/contacts(hlf_mentorid='m{n:06d}')" for n in range(1, 41))


def test_throttling_beyond_the_wait_cap_is_reported_as_throttled_not_unavailable(emulator):
    emulator.admin.seed(3)
    emulator.admin.configure(request_limit=1)
    # A sleep that does not advance the emulator's clock: the window never frees up.
    with emulator.client(sleep=lambda seconds: None, max_rate_limit_waits=2, max_in_flight=1) as client:
        results = [client.set_listed(f"m{n:06d}", False) for n in range(1, 4)]
    assert results[0].outcome is UpdateOutcome.APPLIED
    assert [(r.outcome, r.code) for r in results[1:]] == [(UpdateOutcome.FAILED, THROTTLED)] * 2


def test_5xx_is_retried_with_backoff_then_succeeds(emulator, recording_sleep):
    emulator.admin.seed(1)
    emulator.admin.set_faults(fail_next=2, error_status=503)
    with emulator.client(sleep=recording_sleep) as client:
        result = client.set_listed("m000001", False)
    assert result.outcome is UpdateOutcome.APPLIED and result.rate_limit_waits == 0
    assert [e["status"] for e in emulator.admin.requests()] == [503, 503, 204]
    assert client.stats.retries == 2
    assert len(recording_sleep.calls) == 2 and recording_sleep.calls[1] > recording_sleep.calls[0] / 2


def test_5xx_gives_up_after_max_retries_with_the_last_error(emulator, recording_sleep):
    emulator.admin.seed(1)
    emulator.admin.set_faults(fail_next=10, error_status=502)
    with emulator.client(sleep=recording_sleep, max_retries=2) as client:
        result = client.set_listed("m000001", False)
        with pytest.raises(DynamicsUnavailable, match="HTTP 502"):
            client.whoami()
    assert result.outcome is UpdateOutcome.FAILED and result.code == UNAVAILABLE
    assert "HTTP 502" in result.message and "3 times" in result.message


def test_timeouts_are_retried(emulator, recording_sleep):
    emulator.admin.seed(1)
    emulator.admin.set_faults(timeout_next=1, hang_seconds=5)
    with emulator.client(sleep=recording_sleep, timeout=0.5) as client:
        result = client.set_listed("m000001", False)
    assert result.outcome is UpdateOutcome.APPLIED
    assert client.stats.retries == 1
    assert [e.get("fault") for e in emulator.admin.requests()] == ["timeout", None]


def test_batch_5xx_whole_request_exhausted_fails_each_update(emulator, recording_sleep):
    emulator.admin.seed(2)
    emulator.admin.set_faults(fail_next=10)
    with emulator.client(sleep=recording_sleep, max_retries=1) as client:
        results = client.apply_updates([ListingUpdate("m000001", False), ListingUpdate("m000002", False)])
    assert [r.outcome for r in results] == [UpdateOutcome.FAILED] * 2
    assert all(r.code == UNAVAILABLE for r in results)
