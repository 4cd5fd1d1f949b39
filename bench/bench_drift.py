"""The drift watch's cost: requests to Dataverse per hour in steady state, at N contacts.

Generates N active, certified HLF mentors in SQL and one contact per mentor in the emulator (in
this process, over real HTTP), then:
1. the first look: a full read of every contact (it takes the delta token);
2. an hour of looks at the default interval (MENTOR_PIPELINE_DRIFT_WATCH_MINUTES, 3 min: 20
   looks), run back to back: between looks the pipeline writes `--writes` mentors' listings
   (what a busy hour of app changes sends; their echo comes back in the next delta), and
   `--hand-edits` contacts are unlisted by hand (put right by the drain in between).
Prints requests of the looks only (GETs of the delta; the drain's $batch writes are the sync's
own cost, counted separately), per look and per hour, and the look's time.

    .venv/bin/python bench/bench_drift.py --contacts 5000
    .venv/bin/python bench/bench_drift.py --contacts 100000
Uses DATABASE_URL's server when set, else the embedded one; creates and drops its own database.
"""

from __future__ import annotations

import argparse
import statistics
import time

from _common import scratch_database

import psycopg  # noqa: E402

from mentor_pipeline.drift.run import look  # noqa: E402
from mentor_pipeline.sync import Drain  # noqa: E402
from mentor_pipeline.sync.store import enqueue  # noqa: E402
from tests.support.emulator import running_emulator  # noqa: E402

GENERATE = """
insert into organizations (code, name, website_sync_enabled) values ('HLF', 'HLF', true);
insert into chapters (organization_id, name) select id, 'HLF Oslo' from organizations;
insert into mentors (organization_id, chapter_id, full_name, status)
select o.id, c.id, 'Mentor ' || g, 'active' from organizations o, chapters c, generate_series(1, {n}) g;
insert into certifications (mentor_id, issued_at, expires_at)
select id, now() - interval '100 days', now() + interval '600 days' from mentors;
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=5000)
    parser.add_argument("--looks", type=int, default=20, help="looks in an hour (60 / the interval in minutes)")
    parser.add_argument("--writes", type=int, default=50, help="the pipeline's own writes between two looks")
    parser.add_argument("--hand-edits", type=int, default=1, help="contacts unlisted by hand between two looks")
    parser.add_argument("--quick", action="store_true", help="smoke run: 300 contacts, 3 looks")
    args = parser.parse_args()
    if args.quick:
        args.contacts, args.looks, args.writes = 300, 3, 10
    with scratch_database() as url, running_emulator() as emu:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(GENERATE.format(n=int(args.contacts)))
            conn.execute("delete from sync_queue")
            ids = [str(r[0]) for r in conn.execute("select id from mentors order by id")]
        emu.admin.seed_contacts([{"mentor_id": m, "chapter": "HLF Oslo", "listed": True} for m in ids])
        connect = lambda: psycopg.connect(url)  # noqa: E731
        with emu.client() as client:
            started = time.perf_counter()
            first = look(connect, client)
            print(f"{args.contacts:,} contacts: first look (full read) {first.requests} requests, "
                  f"{time.perf_counter() - started:.1f} s, {first.changes_seen:,} contacts seen, "
                  f"{len(first.drift)} divergent")
            requests, seconds, found = [], [], 0
            for n in range(args.looks):
                batch = ids[(n * args.writes) % len(ids):][: args.writes]
                with psycopg.connect(url, autocommit=True) as conn:
                    enqueue(conn, batch, "force_sync")  # the pipeline's own writes: their echo comes back
                for m in ids[-(n + 1) * args.hand_edits:][: args.hand_edits]:
                    emu.admin.edit_contact(m, listed=False)
                Drain(connect, client).run()
                t = time.perf_counter()
                report = look(connect, client)
                seconds.append(time.perf_counter() - t)
                requests.append(report.requests)
                found += len(report.drift)
                Drain(connect, client).run()  # puts the hand edits right
    print(f"steady state, {args.looks} looks (an hour at {60 / args.looks:g} min), {args.writes} own writes and "
          f"{args.hand_edits} hand edit(s) between looks: {sum(requests)} requests/hour for the looks "
          f"({statistics.mean(requests):.1f} per look), drift found {found} (expected "
          f"{args.looks * args.hand_edits}), look p50 {statistics.median(seconds) * 1000:.0f} ms, "
          f"max {max(seconds) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
