"""A queue processor in its own process, for the crash test: `python -m tests.sync.drain_child`.

Reads DATABASE_URL and DYNAMICS_* from the environment; argv: batch size, lease seconds.
"""

from __future__ import annotations

import sys
from datetime import timedelta

import psycopg

from mentor_pipeline.dynamics import DataverseClient, DynamicsSettings
from mentor_pipeline.sync import Drain, QueuePolicy


def main(argv: list[str]) -> int:
    import os

    batch_size, lease_seconds = int(argv[0]), float(argv[1])
    url = os.environ["DATABASE_URL"]
    policy = QueuePolicy(batch_size=batch_size, lease=timedelta(seconds=lease_seconds))
    with DataverseClient(DynamicsSettings.from_env(), batch_size=10, max_in_flight=1) as client:
        Drain(lambda: psycopg.connect(url), client, policy=policy).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
