"""How long the Dataverse client takes against the emulator with default service protection limits.

Reads N listings (100,000 by default) and applies M updates (10,000) two ways: single PATCH
requests and `$batch` requests, both with the same number in flight. Each run gets a fresh
emulator (6000 requests per 5-minute window, 52 concurrent). Reports medians of several runs;
single-request updates beyond 6000 must wait out the 5-minute window, so that scenario runs
once unless --runs-single says otherwise.

    .venv/bin/python bench/bench_dynamics.py            # full: ~6 minutes (the window wait)
    .venv/bin/python bench/bench_dynamics.py --quick    # smoke: 2,000 listings, 200 updates
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mentor_pipeline.dynamics import ListingUpdate, UpdateOutcome  # noqa: E402
from tests.support.emulator import running_emulator  # noqa: E402


def bench_reads(listings: int, in_flight: int) -> dict:
    with running_emulator(seed_contacts=listings) as emu, emu.client(max_in_flight=in_flight) as client:
        client.whoami()  # sign in outside the timing
        started = time.perf_counter()
        rows = sum(len(page) for page in client.iter_listings())
        elapsed = time.perf_counter() - started
        assert rows == listings, rows
        return {"seconds": elapsed, **client.stats.as_dict()}


def bench_updates(listings: int, updates: int, mode: str, in_flight: int, batch_size: int) -> dict:
    work = [ListingUpdate(f"m{n:06d}", False) for n in range(1, updates + 1)]
    with running_emulator(seed_contacts=max(listings, updates)) as emu:
        with emu.client(max_in_flight=in_flight, batch_size=batch_size) as client:
            client.whoami()
            started = time.perf_counter()
            if mode == "batch":
                results = client.apply_updates(work)
            else:
                with ThreadPoolExecutor(in_flight) as pool:
                    results = list(pool.map(lambda u: client.set_listed(u.mentor_id, u.listed), work))
            elapsed = time.perf_counter() - started
            stats = client.stats.as_dict()
        applied = sum(r.outcome is UpdateOutcome.APPLIED for r in results)
        assert applied == updates, f"{applied} of {updates} applied"
        return {"seconds": elapsed, **stats}


def median_run(runs: int, fn, *args) -> dict:
    samples = [fn(*args) for _ in range(runs)]
    seconds = [s["seconds"] for s in samples]
    return {**samples[-1], "seconds": statistics.median(seconds), "samples": seconds}


def describe(name: str, count: int, result: dict) -> str:
    waits = result["rate_limit_waits"]
    wait_text = f", {waits:.0f} x 429 ({result['rate_limit_wait_seconds']:.0f} s waited, summed over workers)" if waits else ""
    runs = len(result["samples"])
    return (f"{name:<34} {result['seconds']:9.2f} s  {count / result['seconds']:9.0f} /s  "
            f"{result['requests']:6.0f} HTTP requests{wait_text}  (median of {runs})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 2,000 listings, 200 updates, one run each")
    parser.add_argument("--listings", type=int)
    parser.add_argument("--updates", type=int)
    parser.add_argument("--runs", type=int, default=3, help="runs per scenario (median reported)")
    parser.add_argument("--runs-single", type=int, default=1, help="runs of the single-request updates")
    parser.add_argument("--in-flight", type=int, default=4, help="requests in flight (both modes)")
    parser.add_argument("--batch-size", type=int, default=100)
    args = parser.parse_args(argv)
    listings = args.listings or (2_000 if args.quick else 100_000)
    updates = args.updates or (200 if args.quick else 10_000)
    if args.quick:
        args.runs = 1

    print(f"Dataverse client vs emulator: {listings:,} listings, {updates:,} updates, "
          f"{args.in_flight} in flight, batch size {args.batch_size}, default limits (6000 requests / 300 s)")
    reads = median_run(args.runs, bench_reads, listings, args.in_flight)
    print(describe(f"read {listings:,} listings", listings, reads), flush=True)
    batch = median_run(args.runs, bench_updates, listings, updates, "batch", args.in_flight, args.batch_size)
    print(describe(f"{updates:,} updates via $batch", updates, batch), flush=True)
    single = median_run(args.runs_single, bench_updates, listings, updates, "single", args.in_flight,
                        args.batch_size)
    print(describe(f"{updates:,} updates as single PATCH", updates, single), flush=True)
    print(f"$batch is {single['seconds'] / batch['seconds']:.1f}x faster than single requests for {updates:,} updates")
    return 0


if __name__ == "__main__":
    sys.exit(main())
