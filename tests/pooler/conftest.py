"""Fixtures for the pipeline through the transaction pooler: the Dataverse emulator over real
HTTP, and a connection to the pooled test database for the tests' own reads and writes."""

from __future__ import annotations

import pytest

from mentor_pipeline.db.connection import connect
from tests.support.stack import client, emulator

__all__ = ["client", "emulator"]


@pytest.fixture
def pooled_db(pooled_db_url):
    with connect(pooled_db_url, autocommit=True) as conn:
        yield conn
