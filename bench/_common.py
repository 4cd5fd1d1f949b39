"""What the bench scripts share: the repository on sys.path, a scratch database, peak RSS.

The scripts run as files (bench/ is then on sys.path): `import _common` before importing
anything from the repository.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# The go-live date every Dagster process needs (mentor_pipeline/nights.py), early enough for the
# nights the scripts run; the processes they start inherit it.
os.environ.setdefault("MENTOR_PIPELINE_FIRST_NIGHT", "2026-01-01")


@contextlib.contextmanager
def scratch_database(*, keep: bool = False) -> Iterator[str]:
    """URL of a new, migrated database on DATABASE_URL's server (else the embedded one), dropped
    afterwards unless `keep` (then its URL is printed)."""
    # Imported here: the timed child processes import this module too and need none of it.
    from mentor_pipeline.db import database_url
    from mentor_pipeline.db.connection import with_database
    from mentor_pipeline.db.migrate import migrate
    from tests.support.db import create_database, drop_database

    server = os.environ.get("DATABASE_URL") or database_url()
    name = create_database(server)
    url = with_database(server, name)
    try:
        migrate(url, with_app_standin=True)
        yield url
    finally:
        if keep:
            print(f"kept {url}")
        else:
            drop_database(server, name)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
