"""Fixtures for the pipeline through the transaction pooler: a connection to the pooled test
database for the tests' own reads and writes (the emulator and client: tests/support/stack.py)."""

from __future__ import annotations

import pytest

from mentor_pipeline.db.connection import connect


@pytest.fixture
def pooled_db(pooled_db_url):
    with connect(pooled_db_url, autocommit=True) as conn:
        yield conn
