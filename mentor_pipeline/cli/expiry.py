"""`mentor-pipeline expiry [--date YYYY-MM-DD]`: the nightly expiry run without the daemon.

Same SQL functions and order as `nightly_expiry_job`: transitions, certification state,
reminders. Safe to repeat: a second run for the same date creates nothing new.
"""

from __future__ import annotations

import sys

from mentor_pipeline.db import connect
from mentor_pipeline.expiry.dates import parse_run_date
from mentor_pipeline.expiry.report import BUCKETS
from mentor_pipeline.expiry.run import alert_skipped_organizations, run_nightly_expiry
from mentor_pipeline.text import plain

_BUCKET_LABELS = {
    "expired": "expired",
    "lt_7_days": "< 7 days",
    "lt_14_days": "< 14 days",
    "lt_30_days": "< 30 days",
    "ok": "ok",
    "no_certification": "no certification",
}


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "expiry", help="run the nightly certification expiry now (transitions, certification state, reminders)"
    )
    parser.add_argument("--date", metavar="YYYY-MM-DD",
                        help="the night to run (Europe/Oslo); default today. Re-running a night adds nothing.")
    parser.add_argument("--backfill", action="store_true",
                        help="allow a night more than 3 days back (at most a year); reminders then go out"
                             " only for certifications still valid today")
    parser.set_defaults(func=_run)


def _by_org(counts: dict[str, int]) -> str:
    return ", ".join(f"{plain(org)} {n}" for org, n in sorted(counts.items()))


def _run(args) -> int:
    run_date = parse_run_date(args.date, backfill=args.backfill)  # bad input fails here, before any connection
    with connect() as conn:
        result = run_nightly_expiry(conn, run_date)

    state = result.certification_state
    print(f"nightly expiry for {run_date.isoformat()} (Europe/Oslo)")
    moved = result.transitions
    print(f"  transitions: {moved.total} mentors moved from active to expired_cert"
          + (f" ({_by_org(moved.by_organization)})" if moved.total else ""))
    buckets = state.state.per_bucket()
    print(f"  certification state: {sum(buckets.values())} mentors: "
          + ", ".join(f"{_BUCKET_LABELS[b]} {buckets[b]}" for b in BUCKETS))
    print(f"  active without any certification (not transitioned): {state.gaps.total}")
    for gap in state.gaps.sample:
        print(f"    - {plain(gap['full_name'])} ({plain(gap['organization'])}, {plain(gap['chapter'] or 'no chapter')})"
              f" {gap['mentor_id']}")
    if state.gaps.total > len(state.gaps.sample):
        print(f"    ... and {state.gaps.total - len(state.gaps.sample)} more")
    reminders = result.reminders
    per_threshold = ", ".join(f"{days}-day {n}" for days, n in reminders.per_threshold().items())
    print(f"  reminders: {reminders.reminders} new" + (f" ({per_threshold})" if per_threshold else "")
          + f", coordinator notifications: {reminders.notifications} new")
    if reminders.skipped:
        from mentor_pipeline.operations.alerts import alert_sink_from_env

        # Printed (stderr) and alerted; the run is complete for everyone else, so exit 0.
        alert_skipped_organizations(reminders, alert_sink_from_env(),
                                    lambda summary: print(f"warning: {summary}", file=sys.stderr))
    return 0
