"""Retry-After holds the whole client: after one `$batch` worker's 429, no worker sends anything
until the Retry-After has passed (Dataverse throttles per user, and requests sent meanwhile are
refused again). Real time, small windows: the emulator's request log is the evidence."""

from __future__ import annotations

import logging

from mentor_pipeline.dynamics import ListingUpdate, UpdateOutcome
from mentor_pipeline.dynamics.throttle import SharedThrottle

# A sibling's request may already be on its way when a worker receives its 429: requests that
# arrive this soon after the 429 were sent before anyone could know (in-process emulator: ms).
ALREADY_ON_ITS_WAY = 0.2


def inside_a_siblings_window(entries: list[dict]) -> list[tuple[int, int, float]]:
    """(429 seq, request seq, seconds after the 429) for every request that arrived inside
    another request's Retry-After window."""
    batches = [e for e in entries if e["kind"] == "api" and not e["batch"]]
    found = []
    for refused in (e for e in batches if e["status"] == 429):
        start, end = refused["time"] + ALREADY_ON_ITS_WAY, refused["time"] + refused["retry_after"]
        found += [(refused["seq"], e["seq"], round(e["time"] - refused["time"], 3))
                  for e in batches if e["seq"] != refused["seq"] and start < e["time"] < end]
    return found


def test_no_worker_sends_inside_a_siblings_retry_after(emulator):
    emulator.admin.seed(160)
    # 6 requests per 3 s; each $batch takes 0.6 s: while one worker's request is refused,
    # siblings admitted just before it are still in flight and finish well inside the window.
    emulator.admin.configure(request_limit=6, window_seconds=3)
    emulator.admin.set_faults(latency=0.6)
    updates = [ListingUpdate(f"m{n:06d}", False) for n in range(1, 161)]
    with emulator.client(max_in_flight=4, batch_size=10) as client:
        results = client.apply_updates(updates)

    assert all(r.outcome is UpdateOutcome.APPLIED for r in results)
    entries = emulator.admin.requests(include_batch_parts=False)
    refused = [e for e in entries if e["status"] == 429]
    assert refused and all(e["retry_after"] >= 1 for e in refused), "the scenario must throttle"
    assert sum(1 for e in entries if e["status"] == 200) == 16  # every batch went through once
    assert inside_a_siblings_window(entries) == []
    assert {c["mentor_id"]: c["listed"] for c in emulator.admin.contacts()} == {u.mentor_id: False for u in updates}


def test_a_long_wait_is_one_log_line_with_its_retry_after(caplog):
    slept = []
    throttle = SharedThrottle(slept.append, clock=lambda: 100.0)
    with caplog.at_level(logging.INFO, logger="mentor_pipeline.dynamics"):
        throttle.hold(30, "a $batch of 100 updates")
        throttle.hold(30, "a $batch of 100 updates")  # a sibling's 429 with the same deadline
        throttle.hold(2, "a $batch of 100 updates")  # inside the first: no news
        assert throttle.wait() == 30 and throttle.wait() == 0
        throttle.hold(1, "WhoAmI")  # short waits are routine: no line
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["Dataverse throttled a $batch of 100 updates (HTTP 429, Retry-After: 30 s): every request "
                     f"of this client waits until {lines[0][-8:]}"]
    assert slept == [30]


def test_a_longer_retry_after_extends_the_shared_wait():
    now, slept = [0.0], []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    throttle = SharedThrottle(sleep, clock=lambda: now[0])
    throttle.hold(5, "x")
    now[0] += 1
    throttle.hold(10, "y")  # until 11, not 5
    assert throttle.remaining() == 10
    assert throttle.wait() == 10 and slept == [10] and throttle.remaining() == 0


def test_listeners_hear_each_hold_with_what_it_adds_to_the_shared_wait():
    now = [0.0]
    throttle = SharedThrottle(lambda s: None, clock=lambda: now[0])
    heard = []
    stop = throttle.listen(lambda retry_after, adds, what: heard.append((retry_after, adds, what)))
    throttle.hold(5, "x")
    now[0] += 1
    throttle.hold(10, "y")  # until 11 instead of 5: adds 6
    throttle.hold(3, "z")  # inside the current wait: nothing new
    stop()
    throttle.hold(60, "after")
    assert heard == [(5, 5, "x"), (10, 6, "y")]
