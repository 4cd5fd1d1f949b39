"""Lag: a committed status change (or a certification lapsing) -> the confirmed Dynamics write,
with the real Dagster daemon.

Starts the Dataverse emulator (in this process), then `dagster-daemon run` with a temporary
DAGSTER_HOME (PostgreSQL storage, queued runs dequeued every second, threaded sensors) in its
own process group; `sync_queue_sensor` is on by default. Then, one at a time, it changes one
mentor's status (pause / reinstate, alternating), commits, and polls the emulator until the
contact's `hlf_websitelisted` flips. Prints p50/p95/max over the changes; the group is killed
at the end.

    .venv/bin/python bench/bench_lag.py                 # 50 changes
    .venv/bin/python bench/bench_lag.py --changes 60 --webserver
    .venv/bin/python bench/bench_lag.py --changes 10 --gap 35   # cold path: every change waits for a new run
    .venv/bin/python bench/bench_lag.py --kind lapse --changes 12  # a certification lapses (no write to any
        table when it does): from its expires_at to the unlisting in Dynamics; each is renewed (untimed) after
    .venv/bin/python bench/bench_lag.py --kind hand_edit --changes 10 --gap-max 180  # a listed mentor unlisted by
        hand in Dynamics -> listed again by the drift watch and the drain (MENTOR_PIPELINE_DRIFT_WATCH_MINUTES)

DATABASE_URL picks the server (default: the embedded one); scratch databases are dropped after.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from mentor_pipeline.db import database_url  # noqa: E402
from mentor_pipeline.db.connection import with_database  # noqa: E402
from mentor_pipeline.db.migrate import migrate  # noqa: E402
from mentor_pipeline.demo.instance import write_instance_yaml  # noqa: E402
from mentor_pipeline import polling  # noqa: E402
from mentor_pipeline.demo.processes import free_port, start, stop  # noqa: E402
from mentor_pipeline.sync.report import percentile  # noqa: E402
from tests.support.emulator import running_emulator  # noqa: E402


def create_database(admin_url: str, prefix: str) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    return with_database(admin_url, name)


def drop_database(admin_url: str, url: str) -> None:
    name = url.rsplit("/", 1)[1].split("?", 1)[0]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


def seed(url: str, count: int) -> list[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        org = conn.execute("insert into organizations (code, name, website_sync_enabled)"
                           " values ('HLF', 'HLF', true) returning id").fetchone()[0]
        chapter = conn.execute("insert into chapters (organization_id, name) values (%s, 'HLF Oslo') returning id",
                               (org,)).fetchone()[0]
        ids = [str(r[0]) for r in conn.execute(
            "insert into mentors (organization_id, chapter_id, full_name)"
            " select %s, %s, 'Mentor ' || g from generate_series(1, %s) g returning id", (org, chapter, count))]
        conn.execute("insert into certifications (mentor_id, issued_at, expires_at) select m, now() - interval"
                     " '100 days', now() + interval '600 days' from unnest(%s::uuid[]) m", (ids,))
    return ids


def wait_until(predicate, deadline: float, log) -> None:
    try:
        polling.wait_until(predicate, timeout=deadline - time.perf_counter(), what="a change in Dynamics",
                           interval=0.02)
    except TimeoutError:
        print(log())
        raise SystemExit("a change was not written within the timeout") from None


def measure_status_change(conn, mentor, statuses, listed, timeout, log) -> float:
    """Pause or reinstate (alternating); seconds from the commit to the flip in Dynamics."""
    new = "paused" if statuses[mentor] == "active" else "active"
    conn.execute("update mentors set status = %s where id = %s", (new, mentor))  # autocommit: committed
    committed = time.perf_counter()
    statuses[mentor] = new
    wait_until(lambda: listed(mentor) is (new == "active"), committed + timeout, log)
    return time.perf_counter() - committed


def measure_lapse(conn, mentor, statuses, listed, timeout, log) -> float:
    """The certification lapses 2 s from now (nothing is written when it does); seconds from that
    moment to the unlisting in Dynamics. Then renewed and relisted, untimed."""
    conn.execute("update certifications set expires_at = now() + interval '2 seconds' where mentor_id = %s", (mentor,))
    lapses = time.perf_counter() + 2.0
    wait_until(lambda: listed(mentor) is False, lapses + timeout, log)
    lag = time.perf_counter() - lapses
    conn.execute("update certifications set expires_at = now() + interval '600 days' where mentor_id = %s", (mentor,))
    wait_until(lambda: listed(mentor) is True, time.perf_counter() + timeout, log)
    return lag


def measure_hand_edit(admin, mentor, listed, timeout, log) -> float:
    """Unlist a listed mentor by hand in Dynamics; seconds until the pipeline has listed it again."""
    admin.edit_contact(mentor, listed=False)
    edited = time.perf_counter()
    wait_until(lambda: listed(mentor) is True, edited + timeout, log)
    return time.perf_counter() - edited


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=50)
    parser.add_argument("--mentors", type=int, default=10)
    parser.add_argument("--timeout", type=float, help="give up on one change after this long (default 60 s; "
                        "hand_edit: 400 s)")
    parser.add_argument("--webserver", action="store_true", help="also start dagster-webserver (UI)")
    parser.add_argument("--kind", choices=["status", "lapse", "hand_edit"], default="status")
    parser.add_argument("--gap-max", type=float, default=1.0, help="random gap 0.2..this between changes (hand_edit: "
                        "the look interval, so edits fall anywhere between two looks)")
    parser.add_argument("--gap", type=float, help="seconds between changes (default: random 0.2-1.0 s); more than "
                        "the sync run's linger (30 s) measures the cold path: sensor tick + run launch every time")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 changes of 2 mentors")
    args = parser.parse_args(argv)
    if args.quick:
        args.changes, args.mentors = 2, 2
    # `timeout` and Ctrl-C: unwind through the finally below, which stops the daemon's group.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    admin = database_url()
    app_url = create_database(admin, "bench_lag_app")
    storage_url = create_database(admin, "bench_lag_dagster")
    processes = []
    lags: list[float] = []
    try:
        migrate(app_url, with_app_standin=True)
        mentors = seed(app_url, args.mentors)
        with tempfile.TemporaryDirectory(prefix="bench-lag-") as tmp, running_emulator() as emu:
            emu.admin.seed_contacts([{"mentor_id": m, "chapter": "HLF Oslo", "listed": True} for m in mentors])
            home = Path(tmp) / "dagster_home"
            write_instance_yaml(home, storage_url, queued=True)
            workspace = Path(tmp) / "workspace.yaml"
            workspace.write_text(f"load_from:\n  - python_file:\n      relative_path: {ROOT / 'bench' / 'lag_location.py'}\n"
                                 f"      working_directory: {ROOT}\n      attribute: defs\n      location_name: bench_lag\n")
            env = {**os.environ, **emu.env(), "DATABASE_URL": app_url, "DAGSTER_HOME": str(home),
                   "PYTHONPATH": str(ROOT), "BENCH_LAG_DRIFT": "1" if args.kind == "hand_edit" else "0"}
            bin_dir = Path(sys.executable).parent
            processes.append(start([str(bin_dir / "dagster-daemon"), "run", "-w", str(workspace)], env=env,
                                   log_path=Path(tmp) / "daemon.log", cwd=ROOT))
            if args.webserver:
                port = free_port()
                processes.append(start([sys.executable, "-m", "dagster_webserver", "-h", "127.0.0.1", "-p", str(port),
                                        "-w", str(workspace)], env=env, log_path=Path(tmp) / "webserver.log", cwd=ROOT))
                print(f"Dagster UI: http://127.0.0.1:{port}")
            store = emu.emulator.store

            def listed(mentor_id: str):
                contact = store.get_by_key(mentor_id)
                return None if contact is None else contact.attrs.get("hlf_websitelisted")

            # Warm-up: the daemon loads the code location and ticks the sensor once before we time.
            with psycopg.connect(app_url, autocommit=True) as conn:
                print("warming up (daemon start, first run)...", flush=True)
                measure = measure_lapse if args.kind == "lapse" else measure_status_change
                statuses = {m: "active" for m in mentors}
                for n in range(args.changes + 1):
                    mentor = mentors[n % len(mentors)]
                    log = lambda: (Path(tmp) / "daemon.log").read_text()[-3000:]  # noqa: E731
                    timeout = 300 if n == 0 else args.timeout or (400 if args.kind == "hand_edit" else 60)
                    if args.kind == "hand_edit":
                        lag = measure_hand_edit(emu.admin, mentor, listed, timeout, log)
                    else:
                        lag = measure(conn, mentor, statuses, listed, timeout, log)
                    if n == 0:
                        print(f"warm-up change written after {lag:.1f} s", flush=True)
                    else:
                        lags.append(lag)
                        print(f"change {n:3d}: {lag:5.2f} s", flush=True)
                    time.sleep(args.gap if args.gap is not None else random.uniform(0.2, args.gap_max))  # single changes
    finally:
        for process in processes:
            stop(process)
        drop_database(admin, app_url)
        drop_database(admin, storage_url)
    lags.sort()
    target = 300 if args.kind == "hand_edit" else 10
    if lags:
        what = {"lapse": "expires_at -> unlisted in Dynamics", "hand_edit": "hand edit in Dynamics -> put right",
                "status": "commit -> Dynamics write"}[args.kind]
        print(f"lag over {len(lags)} single {args.kind} changes ({what}): p50 {percentile(lags, 50):.2f} s, "
              f"p95 {percentile(lags, 95):.2f} s, max {lags[-1]:.2f} s; target p95 < {target} s -> "
              f"{'met' if percentile(lags, 95) < target else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
