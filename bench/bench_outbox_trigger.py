"""Status-update throughput with and without the outbox trigger, beside the floor of any
trigger-based outbox, in the same run.

pgbench (shipped with pgserver) drives several clients that flip random HLF mentors between
`active` and `paused`, one transaction per update. Each round runs three arms back to back, in an
order that rotates per round so drift on a noisy machine hits all of them:
  off     no trigger on the status column;
  floor   a trigger that does one plain INSERT (the cheapest outbox there is);
  outbox  the pipeline's status trigger (one row into mentor_status_inbox).
We report the median of the per-round ratios outbox/off, floor/off and outbox/floor, and what the
pipeline pays later, off the app's path: the tick's move of each outbox round's changes into the
audit trail and sync_queue (move_status_changes), in changes per second.
Goals (issue 23): the PostgREST shape >= 0.85 of off, the bare shape within 5% of the floor.

`--index-cost` measures instead what an index of the pipeline's on mentors that holds `status`
costs the app's status updates: (organization_id, status), as it was, vs (organization_id), as
it is (trigger off), with the share of HOT updates in each arm.

    .venv/bin/python bench/bench_outbox_trigger.py [--clients 4] [--seconds 10] [--rounds 3] [--index-cost]
Uses DATABASE_URL's server when set, else the embedded one; creates and drops its own database.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import tempfile
import time
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

# The floor: one plain insert per status change, nothing read, no function called, run the way
# the real trigger runs (SECURITY DEFINER, pinned search_path) so the app role may fire it.
FLOOR = """
create table bench_floor_log (
    id bigint generated always as identity primary key,
    mentor_id uuid not null,
    status text not null,
    created_at timestamptz not null default now()
);
create function bench_floor_insert() returns trigger language plpgsql security definer
set search_path = public, pg_temp as $$
begin
    insert into bench_floor_log (mentor_id, status) values (new.id, new.status);
    return null;
end
$$;
create trigger bench_floor after update of status on mentors for each row
when (old.status is distinct from new.status) execute function bench_floor_insert();
alter table mentors disable trigger bench_floor;
"""
ARMS = ("off", "floor", "outbox")


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
        conn.execute(FLOOR)
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


def set_arm(url: str, arm: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for trigger, wanted in (("mentors_enqueue_website_sync", "outbox"), ("bench_floor", "floor")):
            conn.execute(f"alter table mentors {'enable' if arm == wanted else 'disable'} trigger {trigger}")
        conn.execute("vacuum analyze mentors, sync_queue, mentor_status_audit, mentor_status_inbox, bench_floor_log")


def hot_share(url: str) -> tuple[int, int]:
    """(updates, HOT updates) of mentors so far, from the statistics collector."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("select pg_stat_clear_snapshot()")
        return conn.execute("select n_tup_upd, n_tup_hot_upd from pg_stat_user_tables"
                            " where relname = 'mentors'").fetchone()


def move_inbox(url: str, shape: str, round_number: int) -> float:
    """The tick's share, timed: move the round's status changes out of the inbox; changes/s."""
    with psycopg.connect(url, autocommit=True) as conn:
        started = time.perf_counter()
        (moved,) = conn.execute("select move_status_changes()").fetchone()
        seconds = time.perf_counter() - started
    print(f"{shape:9} round {round_number + 1}: the tick moved {moved} changes in {seconds:.2f} s", flush=True)
    return moved / seconds if seconds else 0.0


def script_file(shape: str, mentors: int) -> Path:
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as handle:
        handle.write(SCRIPTS[shape].format(mentors=mentors))
    return Path(handle.name)


def measure_trigger(url: str, args) -> list[str]:
    summary = []
    for shape in args.shape or sorted(SCRIPTS):
        script = script_file(shape, args.mentors)
        ratios: dict[str, list[float]] = {"outbox/off": [], "floor/off": [], "outbox/floor": []}
        moves: list[float] = []
        for round_number in range(args.rounds):
            tps = {}
            # Rotate the order so no arm always runs first (caches) or last (bloat).
            for arm in ARMS[round_number % 3:] + ARMS[:round_number % 3]:
                set_arm(url, arm)
                tps[arm] = run_round(url, script, args.clients, args.seconds)
                print(f"{shape:9} round {round_number + 1}: {arm:6} {tps[arm]:8.0f} updates/s", flush=True)
                if arm == "outbox":
                    moves.append(move_inbox(url, shape, round_number))
            for name in ratios:
                top, bottom = name.split("/")
                ratios[name].append(tps[top] / tps[bottom])
        summary.append(f"{shape:9} median of {args.rounds} paired rounds: "
                       + ", ".join(f"{name} {statistics.median(values):.3f}" for name, values in ratios.items())
                       + f"; the tick moves {statistics.median(moves):.0f} changes/s")
    return summary


# The pipeline's index on mentors, as it was (status in it: no status update can be HOT) and as
# it is (organization_id only).
INDEXES = {"org+status": "(organization_id, status)", "org only": "(organization_id)"}


def use_index(url: str, arm: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("drop index if exists mentors_organization_status")
        conn.execute("drop index if exists mentors_organization")
        conn.execute(f"create index bench_mentors_organization on mentors {INDEXES[arm]}")
        conn.execute("vacuum analyze mentors")


def measure_index(url: str, args) -> list[str]:
    summary = []
    set_arm(url, "off")
    for shape in args.shape or sorted(SCRIPTS):
        script = script_file(shape, args.mentors)
        ratios, hot = [], {arm: [] for arm in INDEXES}
        for round_number in range(args.rounds):
            tps = {}
            for arm in (list(INDEXES) if round_number % 2 == 0 else list(INDEXES)[::-1]):
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute("drop index if exists bench_mentors_organization")
                use_index(url, arm)
                before = hot_share(url)
                tps[arm] = run_round(url, script, args.clients, args.seconds)
                time.sleep(1)  # the statistics are flushed about once a second
                after = hot_share(url)
                updates = after[0] - before[0]
                hot[arm].append((after[1] - before[1]) / updates if updates else 0.0)
                print(f"{shape:9} round {round_number + 1}: index {arm:10} {tps[arm]:8.0f} updates/s,"
                      f" {100 * hot[arm][-1]:.0f}% HOT", flush=True)
            ratios.append(tps["org+status"] / tps["org only"])
        summary.append(f"{shape:9} median of {args.rounds} paired rounds: (organization_id, status) /"
                       f" (organization_id) {statistics.median(ratios):.3f}; HOT updates "
                       + ", ".join(f"{arm} {100 * statistics.median(v):.0f}%" for arm, v in hot.items()))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mentors", type=int, default=10_000)
    parser.add_argument("--shape", choices=sorted(SCRIPTS), action="append",
                        help="transaction shape(s) to measure (default: both)")
    parser.add_argument("--index-cost", action="store_true",
                        help="measure the cost of status in the pipeline's mentors index instead of the trigger")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 round of 1 s, 2 clients, 1,000 mentors")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds, args.clients, args.mentors = 1, 1, 2, 1_000

    with scratch_database() as url:
        prepare(url, args.mentors)
        summary = measure_index(url, args) if args.index_cost else measure_trigger(url, args)
        print()
        print("\n".join(summary))


if __name__ == "__main__":
    main()
