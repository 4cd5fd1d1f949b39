"""Every bench still runs: each script's --quick mode, start to finish, on the test server.

A smoke test, no timing asserts: a change that breaks a bench (a renamed function, a changed
table) fails here instead of on the day someone needs the figure. The scripts run at the same
time, each in its own process with its own scratch databases, so the whole set takes about as
long as the slowest one (the lag bench, which starts the Dagster daemon).
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Each bench and a line its run must print (its figure: proof that it got to the end).
BENCHES = {
    "bench_sync.py": "target: 300 changes under 60 s",
    "bench_reconcile.py": "all divergent (500 unlisted by hand)",
    "bench_desired_state.py": "generated 5000 + 1000 mentors",
    "bench_expiry.py": "re-run (idempotent)",
    "bench_outbox_trigger.py": "paired rounds: outbox/off",
    "bench_dynamics.py": "faster than single requests",
    "bench_lag.py": "lag over 2 single status changes",
    "bench_drift.py": "steady state, 3 looks",
}


def test_every_bench_has_a_quick_mode_listed_here():
    assert sorted(p.name for p in (ROOT / "bench").glob("bench_*.py")) == sorted(BENCHES)


@pytest.mark.db
def test_every_bench_runs_in_quick_mode(admin_url):
    env = {**os.environ, "DATABASE_URL": admin_url}

    def run(script: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(ROOT / "bench" / script), "--quick"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)

    with ThreadPoolExecutor(len(BENCHES)) as pool:
        results = dict(zip(BENCHES, pool.map(run, BENCHES)))
    failed = {script: (r.returncode, (r.stdout + r.stderr)[-2000:]) for script, r in results.items()
              if r.returncode != 0 or BENCHES[script] not in r.stdout}
    assert not failed, failed
