"""Dagster resources shared by every domain. Secrets arrive through EnvVar, never run config."""

from __future__ import annotations

import dagster as dg
import psycopg

from mentor_pipeline.db import connect


class AppDatabase(dg.ConfigurableResource):
    """The app's PostgreSQL (Supabase in production).

    Leave `url` empty to use the process's DATABASE_URL or the embedded server: the one
    decision lives in `mentor_pipeline.db.database_url`.
    """

    url: str = ""

    def connect(self, *, autocommit: bool = False) -> psycopg.Connection:
        return connect(self.url or None, autocommit=autocommit)
