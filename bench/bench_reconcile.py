"""Nightly reconciliation of N HLF mentors (100,000 by default) against the Dataverse emulator.

Generates the mentors in SQL (active, certified, 20 chapters) and one listed contact per mentor in
the emulator (its own process, default service protection limits), then reconciles twice, each
time in a fresh process calling `mentor_pipeline.reconcile.reconcile` (what the nightly job and
`mentor-pipeline reconcile` run):
1. all in sync: every listing read and compared, nothing written;
2. 1% divergent: half of those contacts unlisted by hand in Dynamics, half of those mentors
   paused in the app with their queue row lost; all are re-synced through sync_queue;
3. converged: the next night finds nothing to do;
4. all divergent: every contact unlisted by hand, so every mentor is re-synced (a first
   reconciliation after go-live acts on every mentor), then converged again.
Each contact carries its mentor's chapter, so the in-sync case is in sync.
Prints wall time (the reconcile call; also the process incl. Python start-up) and peak RSS of the
reconciling process. Target: under 30 s and under 500 MB each.

    .venv/bin/python bench/bench_reconcile.py                  # 100,000 mentors
    .venv/bin/python bench/bench_reconcile.py --mentors 20000  # linear? compare with 100,000
    .venv/bin/python bench/bench_reconcile.py --quick          # smoke: 500 mentors
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
select o.id, 'HLF chapter ' || g from organizations o, generate_series(1, 20) g where o.code = 'HLF';
create temporary table bench_chapters as
select row_number() over (order by name) - 1 as slot, id, organization_id from chapters;
insert into mentors (organization_id, chapter_id, full_name, status)
select c.organization_id, c.id, 'Mentor ' || g, 'active'
from generate_series(1, {n}) g join bench_chapters c on c.slot = g % 20;
insert into certifications (mentor_id, issued_at, expires_at)
select id, now() - interval '300 days', now() + interval '400 days' from mentors;
-- The certifications queued every mentor; that first sync is what the contacts below show.
delete from sync_queue;
analyze;
"""


def child(url: str) -> None:
    """One reconciliation in this process; prints a JSON line with what it did and cost."""
    from mentor_pipeline.dynamics import DataverseClient, DynamicsSettings
    from mentor_pipeline.reconcile import reconcile
    from mentor_pipeline.sync import Drain

    started = time.perf_counter()
    with DataverseClient(DynamicsSettings.from_env()) as client:
        report = reconcile(Drain(lambda: psycopg.connect(url), client))
    seconds = time.perf_counter() - started
    peak_mb = peak_rss_mb()
    summary = report.summary()
    print(json.dumps({"seconds": seconds, "read_seconds": report.read_seconds, "peak_rss_mb": peak_mb,
                      "checked": summary["checked"], "divergent": summary["divergent"],
                      "queued": summary["queued"], "applied": summary.get("applied", 0),
                      "still_divergent": summary["still_divergent"],
                      "requests": client.stats.requests, "failed": report.failed}))


def run_once(url: str, env: dict) -> dict:
    started = time.perf_counter()
    out = subprocess.run([sys.executable, __file__, "--child", url], env=env, capture_output=True, text=True,
                         check=True, cwd=ROOT)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["process_seconds"] = time.perf_counter() - started
    return result


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(sys.argv[2])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mentors", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="smoke run: 500 mentors")
    args = parser.parse_args()
    if args.quick:
        args.mentors = 500

    from mentor_pipeline.demo import processes
    from mentor_pipeline.emulator.admin import EmulatorAdmin
    from mentor_pipeline.emulator.options import DEFAULT_CLIENT_ID, DEFAULT_TENANT_ID

    with scratch_database() as url:
        port = processes.free_port()
        emulator_url = f"http://127.0.0.1:{port}"
        secret = "bench-secret"
        env = {**os.environ, "DYNAMICS_URL": emulator_url, "DYNAMICS_AUTHORITY": emulator_url,
               "DYNAMICS_TENANT_ID": DEFAULT_TENANT_ID, "DYNAMICS_CLIENT_ID": DEFAULT_CLIENT_ID,
               "DYNAMICS_CLIENT_SECRET": secret, "EMULATOR_CLIENT_SECRET": secret}
        emulator = processes.start([sys.executable, "-m", "mentor_pipeline.cli", "emulator", "--port", str(port)], env=env)
        try:
            processes.wait_until(processes.http_ok(f"{emulator_url}/_admin/state"), timeout=60, what="emulator",
                                 process=emulator)
            with psycopg.connect(url) as conn:
                version = conn.execute("show server_version").fetchone()[0]
                began = time.perf_counter()
                conn.execute(GENERATE.format(n=int(args.mentors)))
                conn.commit()
                # Each contact in its mentor's chapter, as a sync would have written it: in sync.
                chapter_of = dict(conn.execute(
                    "select m.id::text, c.name from mentors m join chapters c on c.id = m.chapter_id order by m.id"))
                ids = list(chapter_of)
            admin = EmulatorAdmin(emulator_url, timeout=300)

            def seed(keys: list[str], listed: bool) -> None:
                for start in range(0, len(keys), 20_000):
                    admin.seed_contacts([{"mentor_id": m, "full_name": f"Mentor {m[:8]}", "chapter": chapter_of[m],
                                          "listed": listed} for m in keys[start:start + 20_000]])

            seed(ids, True)
            print(f"PostgreSQL {version}, {os.cpu_count()} CPUs; {len(ids):,} HLF mentors and contacts generated in "
                  f"{time.perf_counter() - began:.1f} s; emulator with Dataverse's default limits in its own process")

            def show(label: str, r: dict) -> None:
                ok = "OK" if r["seconds"] < 30 and r["peak_rss_mb"] < 500 else "OVER TARGET"
                print(f"{label}: {r['seconds']:.2f} s (read {r['read_seconds']:.2f} s; process {r['process_seconds']:.2f} s "
                      f"incl. Python start-up), peak RSS {r['peak_rss_mb']:.0f} MB [{ok}]")
                print(f"    checked {r['checked']:,}, divergent {r['divergent']:,}, queued {r['queued']:,}, applied "
                      f"{r['applied']:,}, still divergent {r['still_divergent']:,}, Web API requests {r['requests']:,}")

            show("all in sync", run_once(url, env))

            one_percent = max(2, len(ids) // 100)
            unlisted, paused = ids[:one_percent // 2], ids[one_percent // 2:one_percent]
            seed(unlisted, False)
            with psycopg.connect(url) as conn:
                conn.execute("update mentors set status = 'paused' where id = any(%s::uuid[])", (paused,))
                conn.execute("delete from sync_queue")  # the removals were lost: Dynamics still lists them
            show(f"1% divergent ({len(unlisted):,} unlisted by hand, {len(paused):,} paused with the write lost)",
                 run_once(url, env))
            show("converged (next night)", run_once(url, env))

            seed(ids, False)  # every contact unlisted by hand: a full re-sync
            show(f"all divergent ({len(ids):,} unlisted by hand)", run_once(url, env))
            show("converged (next night)", run_once(url, env))
        finally:
            processes.stop(emulator)


if __name__ == "__main__":
    main()
