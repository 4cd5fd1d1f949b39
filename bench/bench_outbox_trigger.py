"""Status-update throughput with and without the outbox trigger, in the same run.

pgbench (shipped with pgserver) drives several clients that flip random HLF mentors between
`active` and `paused`, one transaction per update. Rounds alternate trigger on / off so drift on
a noisy machine hits both sides; we report the median of each side and their ratio.
Target: at most 15% fewer updates per second with the trigger.

    .venv/bin/python bench/bench_outbox_trigger.py [--clients 4] [--seconds 10] [--rounds 3]
Uses DATABASE_URL's server when set, else the embedded one; creates and drops its own database.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import tempfile
from pathlib import Path

from _common import scratch_database

import psycopg  # noqa: E402

# A bare UPDATE: the cheapest possible status change, so the trigger's share is the largest.
BARE = """\\set n random(1, {mentors})
update mentors set status = case when status = 'active' then 'paused' else 'active' end
 where id = (select id from bench_mentor_ids where n = :n);
"""
# What Supabase's API (PostgREST) runs for the app: JWT claims and role set per transaction,
# the update checked by the app's RLS policy, the row returned.
POSTGREST = """\\set n random(1, {mentors})
begin;
select set_config('request.jwt.claims', '{{"sub":"coordinator","role":"authenticated"}}', true);
set local role authenticated;
update mentors set status = case when status = 'active' then 'paused' else 'active' end
 where id = (select id from bench_mentor_ids where n = :n) returning id, status;
commit;
"""
SCRIPTS = {"bare": BARE, "postgrest": POSTGREST}


def pgbench_binary() -> str:
    import pgserver._commands as commands

    bundled = commands.POSTGRES_BIN_PATH / "pgbench"
    return str(bundled) if bundled.exists() else "pgbench"


def prepare(url: str, mentors: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("insert into organizations (code, name, website_sync_enabled) values ('HLF', 'HLF', true)")
        conn.execute("insert into chapters (organization_id, name) select id, 'Oslo' from organizations")
        conn.execute(
            "insert into mentors (organization_id, chapter_id, full_name)"
            " select c.organization_id, c.id, 'Mentor ' || g from chapters c, generate_series(1, %s) g",
            (mentors,),
        )
        conn.execute(
            "insert into certifications (mentor_id, issued_at, expires_at)"
            " select id, now() - interval '1 year', now() + interval '1 year' from mentors"
        )
        conn.execute("create table bench_mentor_ids as select row_number() over () as n, id from mentors")
        conn.execute("alter table bench_mentor_ids add primary key (n)")
        # Stand-in for the app's policy: coordinators may update mentors.
        conn.execute("grant select, update on mentors to authenticated")
        conn.execute("grant select on bench_mentor_ids to authenticated")
        conn.execute(
            "create policy bench_coordinators on mentors for all to authenticated"
            " using (current_setting('request.jwt.claims', true)::jsonb ->> 'role' = 'authenticated')"
        )
        conn.execute("vacuum analyze")


def run_round(url: str, script: Path, clients: int, seconds: int) -> float:
    result = subprocess.run(
        [pgbench_binary(), "-n", "-c", str(clients), "-j", str(clients), "-T", str(seconds), "-f", str(script), url],
        capture_output=True, text=True, check=True,
    )
    match = re.search(r"tps = ([\d.]+)", result.stdout)
    if not match:
        raise RuntimeError(f"unexpected pgbench output:\n{result.stdout}\n{result.stderr}")
    return float(match.group(1))


def set_trigger(url: str, enabled: bool) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        action = "enable" if enabled else "disable"
        conn.execute(f"alter table mentors {action} trigger mentors_enqueue_website_sync")
        conn.execute("vacuum analyze mentors, sync_queue, mentor_status_audit")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mentors", type=int, default=10_000)
    parser.add_argument("--shape", choices=sorted(SCRIPTS), action="append",
                        help="transaction shape(s) to measure (default: both)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 round of 1 s, 2 clients, 1,000 mentors")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds, args.clients, args.mentors = 1, 1, 2, 1_000

    with scratch_database() as url:
        prepare(url, args.mentors)
        summary = []
        for shape in args.shape or sorted(SCRIPTS):
            with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as handle:
                handle.write(SCRIPTS[shape].format(mentors=args.mentors))
            script = Path(handle.name)
            with_trigger, without_trigger = [], []
            for round_number in range(args.rounds):
                for enabled, bucket in ((False, without_trigger), (True, with_trigger)):
                    set_trigger(url, enabled)
                    tps = run_round(url, script, args.clients, args.seconds)
                    bucket.append(tps)
                    print(f"{shape:9} round {round_number + 1}: trigger {'on ' if enabled else 'off'} {tps:8.0f} updates/s", flush=True)
            on, off = statistics.median(with_trigger), statistics.median(without_trigger)
            summary.append(f"{shape:9} median updates/s without {off:7.0f}, with {on:7.0f}: ratio {on / off:.3f}"
                           f" ({100 * (1 - on / off):.1f}% fewer with the trigger; target <= 15%)")
        print()
        print("\n".join(summary))


if __name__ == "__main__":
    main()
