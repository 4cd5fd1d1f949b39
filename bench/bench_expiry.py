"""The nightly expiry job over many mentors: a first run and an idempotent re-run.

Generates N mentors (1,000,000 by default) with certifications in SQL (HLF with website sync,
NHF without; expiries spread from 30 days ago to two years ahead, 10% with an older superseded
certification, 1% with none; 85% active), then runs `nightly_expiry_job`'s three assets twice
for today's Oslo night (partition), each time in a fresh process (Dagster in-process executor,
ephemeral instance). Prints each run's wall time, its
peak memory (RSS of the run process) and what it did. Target: each run under 15 s.

    .venv/bin/python bench/bench_expiry.py                 # 1,000,000 mentors
    .venv/bin/python bench/bench_expiry.py --mentors 50000 # smaller
    .venv/bin/python bench/bench_expiry.py --quick         # smoke: 5,000 mentors
Uses DATABASE_URL's server when set, else the embedded one; creates and drops its own database.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from _common import ROOT, peak_rss_mb, scratch_database

import psycopg  # noqa: E402

GENERATE = """
insert into organizations (code, name, website_sync_enabled)
values ('HLF', 'Hørselshemmedes Landsforbund', true), ('NHF', 'Norges Handikapforbund', false);

insert into chapters (organization_id, name)
select o.id, o.code || ' chapter ' || g from organizations o, generate_series(1, 20) g;

create temporary table bench_chapters as
select row_number() over (order by name) - 1 as slot, id, organization_id from chapters;

insert into mentors (organization_id, chapter_id, full_name, status)
select c.organization_id, c.id, 'Mentor ' || g,
       case when g % 20 = 0 then 'expired_cert' when g % 10 = 5 then 'paused' else 'active' end
from generate_series(1, {mentors}) g
join bench_chapters c on c.slot = g % 40;

create temporary table bench_mentors as
select id, row_number() over (order by id) as n from mentors;

-- Current certifications: expiry spread over [-30, 700] days from the run date, at any time of day.
insert into certifications (mentor_id, issued_at, expires_at)
select id, expires_at - interval '2 years', expires_at
from (
    select id, expiry_run_start('{run_date}'::date) + ((n * 7919) % 731 - 30) * interval '1 day'
               + (n % 86400) * interval '1 second' as expires_at, n
    from bench_mentors where n % 100 <> 0
) current_certs;

-- 10% also hold an older certification that the current one superseded.
insert into certifications (mentor_id, issued_at, expires_at)
select id, expiry_run_start('{run_date}'::date) - interval '5 years', expiry_run_start('{run_date}'::date) - interval '3 years'
from bench_mentors where n % 10 = 3;
"""


def generate(url: str, mentors: int, run_date) -> float:
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        with conn.transaction():
            # Only an int and a date go into the text: safe to format, and one round trip.
            conn.execute(GENERATE.format(mentors=int(mentors), run_date=run_date.isoformat()))
        conn.execute("vacuum analyze")
        # Flush the generation's writes now, so the timed runs do not pay for the set-up's checkpoint.
        try:
            conn.execute("checkpoint")
        except psycopg.errors.InsufficientPrivilege:
            pass
    return time.perf_counter() - started


def child(url: str, run_date: str) -> None:
    """One run of the job's assets in this process; prints a JSON line for the parent."""
    import dagster as dg

    from mentor_pipeline.expiry.definitions import certification_state, expired_cert_transitions, expiry_reminders
    from mentor_pipeline.expiry.dates import parse_run_date
    from mentor_pipeline.operations.alerts import AlertSink
    from mentor_pipeline.resources import AppDatabase

    started = time.perf_counter()
    result = dg.materialize(
        [expired_cert_transitions, certification_state, expiry_reminders],
        partition_key=parse_run_date(run_date).isoformat(),
        resources={"app_db": AppDatabase(url=url), "alerts": AlertSink()},
        instance=dg.DagsterInstance.ephemeral(),
    )
    elapsed = time.perf_counter() - started
    metadata = {}
    for event in result.get_asset_materialization_events():
        metadata.update({k: v.value for k, v in event.materialization.metadata.items()
                         if isinstance(v.value, (int, float, bool, dict)) and not isinstance(v.value, bool)})
    step_seconds = {
        e.step_key: None for e in result.all_events if e.event_type_value == "STEP_SUCCESS"
    }
    for event in result.all_events:
        if event.event_type_value == "STEP_SUCCESS":
            step_seconds[event.step_key] = round(event.event_specific_data.duration_ms / 1000, 2)
    print(json.dumps({
        "success": result.success,
        "seconds": elapsed,
        "step_seconds": step_seconds,
        "peak_rss_mb": peak_rss_mb(),
        "transitioned": metadata.get("mentors_transitioned_to_expired_cert"),
        "reminders": metadata.get("reminders_created"),
        "notifications": metadata.get("notifications_created"),
        "buckets": {k.removeprefix("mentors_"): v for k, v in metadata.items()
                    if k.startswith("mentors_") and k != "mentors_transitioned_to_expired_cert"},
    }))


def run_once(url: str, run_date: str) -> dict:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--child", url, run_date], capture_output=True, text=True, cwd=ROOT)
    process_seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"run failed:\n{proc.stderr[-3000:]}")
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    report["process_seconds"] = process_seconds
    return report


def _load() -> str:
    # The machine is shared: say how busy it was, next to the figures.
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mentors", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database (prints its URL)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 5,000 mentors")
    args = parser.parse_args()
    if args.quick:
        args.mentors = 5_000

    from mentor_pipeline.expiry.dates import today_in_oslo

    run_date = today_in_oslo()
    with scratch_database(keep=args.keep) as url:
        with psycopg.connect(url) as conn:
            version = conn.execute("show server_version").fetchone()[0]
        print(f"PostgreSQL {version}, {os.cpu_count()} CPUs; run date {run_date} (Europe/Oslo);"
              f" load average before {_load()}")
        seconds = generate(url, args.mentors, run_date)
        with psycopg.connect(url) as conn:
            mentors, certs = conn.execute(
                "select (select count(*) from mentors), (select count(*) from certifications)").fetchone()
        print(f"generated {mentors:,} mentors, {certs:,} certifications in {seconds:.1f} s")

        for label in ["first run", "re-run (idempotent)"]:
            report = run_once(url, run_date.isoformat())
            target = "OK" if report["seconds"] < 15 else "OVER 15 s TARGET"
            print(f"{label}: {report['seconds']:.2f} s for the job's assets ({target}),"
                  f" process {report['process_seconds']:.2f} s incl. Python start-up;"
                  f" peak RSS {report['peak_rss_mb']:.0f} MB")
            print(f"    load average after {_load()}; steps {report['step_seconds']}; transitioned {report['transitioned']:,},"
                  f" reminders {report['reminders']:,}, notifications {report['notifications']:,}")
            if label == "first run":
                print(f"    buckets {report['buckets']}")
                print(f"    then the drain path's tick moves the transitions' status changes: {move_inbox(url)}")
        with psycopg.connect(url) as conn:
            reminders, notifications, queued = conn.execute(
                "select (select count(*) from cert_expiry_reminders), (select count(*) from coordinator_notifications),"
                " (select count(*) from sync_queue)").fetchone()
        print(f"after both runs: {reminders:,} reminders, {notifications:,} notifications, {queued:,} sync_queue rows")


def move_inbox(url: str) -> str:
    """The pipeline's later share of the transitions, off the job's path: the tick moves their
    status changes into the audit trail and sync_queue."""
    with psycopg.connect(url, autocommit=True) as conn:
        started = time.perf_counter()
        conn.execute("select website_sync_tick()")
        seconds = time.perf_counter() - started
        (audited,) = conn.execute("select count(*) from mentor_status_audit").fetchone()
    return f"{audited:,} audit rows in {seconds:.2f} s"


if __name__ == "__main__":
    main()
