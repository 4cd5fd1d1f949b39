"""Property-based: random status sequences, certification histories (any date the column allows)
and threshold configurations (valid, invalid, saved behind the checks' back), on real
PostgreSQL. Whatever the input, the pending queue rows, the audit trail and the reminders agree
with the rule, computed here independently, and nothing raises except the refusal of an
invalid threshold save. The rule: a certification recorded marks an HLF mentor with what the
website should show (add/remove); paused/expired_cert -> pending 'remove' for HLF; reinstated
with a valid latest certification -> 'restore', otherwise no new row and a warning in the audit;
NHF never enqueues; reminders only at configured thresholds, never for lapsed certifications,
never twice.

Each example runs in one transaction that is rolled back, so examples never see each other.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mentor_pipeline.expiry.dates import today_in_oslo
from mentor_pipeline.expiry.run import run_nightly_expiry
from mentor_pipeline.timezone import OSLO
from tests.expiry.helpers import plant_thresholds
from tests.support.factories import mentor as new_mentor
from tests.support.factories import move_status_changes

STATUSES = ["active", "paused", "expired_cert"]
EVENTS = ["status_change", "manual_coordinator_action"]
DEFAULT_THRESHOLDS = [30, 14, 7]
WARNING = "reinstated without a valid certification: website listing not restored"
# Expiry dates Python's datetime cannot hold, as SQL literals: never expires, and beyond year 9999.
# (A BC expiry is issued at '-infinity', so it is always the oldest certification.)
FAR_EXPIRIES = {"never": "infinity", "year-20000": "20000-01-01 12:00+00", "bc": "0500-01-01 12:00+00 BC"}

# -- the input ------------------------------------------------------------------------------------

expiry_offsets = st.one_of(
    st.integers(-40, 40).map(lambda days: timedelta(days=days)),  # around every threshold
    st.integers(-48, 48).map(lambda hours: timedelta(hours=hours)),  # around now and midnight
    st.sampled_from(sorted(FAR_EXPIRIES)),
)


@st.composite
def certification_histories(draw):
    """Up to three certifications, issued at distinct times (the latest issued is the latest)."""
    issued = draw(st.lists(st.integers(1, 2000), min_size=0, max_size=3, unique=True))
    return [(timedelta(days=-ago), draw(expiry_offsets)) for ago in issued]


mentors = st.fixed_dictionaries({
    "org": st.sampled_from(["HLF", "NHF"]),
    "initial": st.sampled_from(STATUSES),
    "certifications": certification_histories(),
    "changes": st.lists(st.tuples(st.sampled_from(STATUSES), st.sampled_from(EVENTS)), max_size=5),
})
threshold_lists = st.one_of(
    st.lists(st.integers(1, 365), min_size=1, max_size=10, unique=True),
    st.lists(st.integers(1, 365), min_size=9, max_size=12, unique=True),  # around the count limit
    st.lists(st.integers(-3, 400), max_size=12),
)
threshold_configs = st.one_of(
    st.just(("none",)),
    st.tuples(st.just("save"), threshold_lists, st.booleans()),
    st.tuples(st.just("plant"), st.sampled_from(["{400}", "{0,7}", "{30,30}", "{}", "{7.5}", "{2147483647}"])),
)

# -- the rule, written out here --------------------------------------------------------------------


def thresholds_valid(days: list[int]) -> bool:
    return 1 <= len(days) <= 10 and all(1 <= d <= 365 for d in days) and len(set(days)) == len(days)


@dataclass
class Expected:
    status: str
    pending: tuple[str, str] | None = None  # (operation, triggered_by_event)
    audit: list[tuple] = field(default_factory=list)


def valid_at(expiry, instant: datetime) -> bool:
    """expiry: a datetime, a FAR_EXPIRIES key, or None (no certification)."""
    if expiry is None or expiry == "bc":
        return False
    return expiry in ("never", "year-20000") or expiry > instant


def expected_changes(spec: dict, latest_expiry, now: datetime) -> Expected:
    valid_now = valid_at(latest_expiry, now)
    state = Expected(spec["initial"])
    if spec["certifications"] and spec["org"] == "HLF":
        # Each certification insert marks the mentor with what the rule says now; the last one
        # inserted (the latest) decides.
        listed = state.status == "active" and valid_now
        state.pending = ("add" if listed else "remove", "certification_change")
    for new, event in spec["changes"]:
        old = state.status
        if new == old:
            continue  # no change, no trigger
        wanted = warning = None
        if new in ("paused", "expired_cert"):
            wanted = "remove"
        elif old in ("paused", "expired_cert"):
            if valid_now:
                wanted = "restore"
            else:
                warning = WARNING
        enqueued = wanted if wanted and spec["org"] == "HLF" else None
        if enqueued:
            state.pending = (enqueued, event)
        state.audit.append((old, new, event, enqueued, warning))
        state.status = new
    return state


def oslo_midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=OSLO)


# -- the property ----------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")
@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(people=st.lists(mentors, min_size=1, max_size=5),
       hlf_config=threshold_configs, nhf_config=threshold_configs)
def test_queue_audit_and_reminders_always_follow_the_rule(db_url, people, hlf_config, nhf_config):
    with psycopg.connect(db_url) as conn:
        with conn.transaction(force_rollback=True):
            check_one_world(conn, people, {"HLF": hlf_config, "NHF": nhf_config})


def check_one_world(conn: psycopg.Connection, people: list[dict], configs: dict) -> None:
    now = conn.execute("select now()").fetchone()[0]
    run_date = today_in_oslo(now)

    # Thresholds: a save is refused exactly when the rule says the list is invalid.
    in_force: dict[str, list[int] | None] = {}
    for org, config in configs.items():
        org_id = conn.execute("insert into organizations (code, name, website_sync_enabled) values (%s, %s, %s)"
                              " returning id", (org, org, org == "HLF")).fetchone()[0]
        in_force[org] = DEFAULT_THRESHOLDS
        if config[0] == "save":
            _, days, enabled = config
            try:
                with conn.transaction():
                    conn.execute("insert into expiry_threshold_config (organization_id, threshold_days,"
                                 " threshold_overrides_enabled) values (%s, %s::integer[], %s)", (org_id, days, enabled))
                saved = True
            except psycopg.errors.CheckViolation as refused:
                assert str(refused).startswith(f"invalid expiry thresholds") and f"organisation {org}" in str(refused)
                saved = False
            assert saved == thresholds_valid(days), days
            if saved and enabled:
                in_force[org] = days
        elif config[0] == "plant":
            plant_thresholds(conn, org, config[1])
            in_force[org] = None  # invalid anyway: skipped, never used

    # Mentors, their certifications, then their status changes through the trigger.
    expected: dict[uuid.UUID, Expected] = {}
    latest: dict[uuid.UUID, object] = {}
    for i, spec in enumerate(people):
        mentor_id = new_mentor(conn, spec["org"], status=spec["initial"], cert_expires_in=None, full_name=f"M{i}")
        issued = []  # (issued_at, expiry) in issue order
        for issued_ago, expires_in in spec["certifications"]:
            if expires_in == "bc":
                issued.append((None, "bc"))  # issued at -infinity: the oldest
            elif isinstance(expires_in, str):
                issued.append((now + issued_ago, expires_in))
            else:
                issued.append((now + issued_ago, max(now + expires_in, now + issued_ago + timedelta(seconds=1))))
        issued.sort(key=lambda c: (c[0] is not None, c[0] or now))
        for issued_at, expiry in issued:
            conn.execute("insert into certifications (mentor_id, issued_at, expires_at)"
                         " values (%s, coalesce(%s, '-infinity'::timestamptz), %s::timestamptz)",
                         (mentor_id, issued_at, FAR_EXPIRIES[expiry] if isinstance(expiry, str) else expiry))
        latest[mentor_id] = issued[-1][1] if issued else None
        for new, event in spec["changes"]:
            conn.execute("select set_config('mentor_pipeline.triggered_by_event', %s, true)", (event,))
            conn.execute("update mentors set status = %s where id = %s", (new, mentor_id))
        conn.execute("select set_config('mentor_pipeline.triggered_by_event', '', true)")
        move_status_changes(conn)  # the pipeline's tick after the app's changes
        expected[mentor_id] = expected_changes(spec, latest[mentor_id], now)

    def pending():
        return {m: (op, ev) for m, op, ev in conn.execute(
            "select mentor_id, operation, triggered_by_event from sync_queue where status = 'pending'").fetchall()}

    def audit(mentor_id):
        return [tuple(row) for row in conn.execute(
            "select old_status, new_status, triggered_by_event, sync_operation, warning from mentor_status_audit"
            " where mentor_id = %s order by id", (mentor_id,)).fetchall()]

    assert pending() == {m: e.pending for m, e in expected.items() if e.pending}
    for mentor_id, e in expected.items():
        assert audit(mentor_id) == e.audit

    # The night: lapsed active mentors move to expired_cert (HLF: a 'remove' marked nightly_expiry).
    run_start = oslo_midnight(run_date)
    for mentor_id, e in expected.items():
        expiry = latest[mentor_id]
        if e.status == "active" and expiry is not None and not valid_at(expiry, run_start):
            org = people[list(expected).index(mentor_id)]["org"]
            e.audit.append(("active", "expired_cert", "nightly_expiry", "remove" if org == "HLF" else None, None))
            e.status = "expired_cert"
            if org == "HLF":
                e.pending = ("remove", "nightly_expiry")

    result = run_nightly_expiry(conn, run_date)
    move_status_changes(conn)  # the tick after the night's transitions

    statuses = dict(conn.execute("select id, status from mentors").fetchall())
    assert statuses == {m: e.status for m, e in expected.items()}
    assert pending() == {m: e.pending for m, e in expected.items() if e.pending}
    for mentor_id, e in expected.items():
        assert audit(mentor_id) == e.audit
    assert set(result.reminders.skipped) == {org for org, days in in_force.items() if days is None}

    # Reminders: the tightest configured threshold reached, only for a certification valid on the
    # night and the day it is sent (today), at most one per mentor, one notification each.
    want = set()
    for i, (mentor_id, expiry) in enumerate(latest.items()):
        days = in_force[people[i]["org"]]
        if days is None or not isinstance(expiry, datetime) or expiry <= run_start:
            continue
        days_left = (expiry.astimezone(OSLO).date() - run_date).days
        reached = [d for d in days if d >= days_left]
        if reached:
            want.add((mentor_id, min(reached), expiry.astimezone(OSLO).date()))
    got = conn.execute("select mentor_id, threshold_day, certification_expiry_date from cert_expiry_reminders").fetchall()
    assert sorted(map(tuple, got)) == sorted(want)
    assert conn.execute("select count(*) from coordinator_notifications").fetchone() == (len(want),)

    # Never twice: the same night again adds nothing and changes nothing.
    again = run_nightly_expiry(conn, run_date)
    assert move_status_changes(conn) == 0
    assert (again.reminders.reminders, again.transitions.total) == (0, 0)
    assert conn.execute("select count(*) from cert_expiry_reminders").fetchone() == (len(want),)

    # Every view reads every row (any certification date) without an error.
    conn.execute("select count(to_jsonb(s)::text) from certification_state s").fetchone()
    conn.execute("select count(to_jsonb(s)::text) from mentor_website_desired_state s").fetchone()
    conn.execute("select count(to_jsonb(s)::text) from reconciliation_duplicates s").fetchone()
