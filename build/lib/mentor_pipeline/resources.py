"""Dagster resources shared by every domain. Secrets arrive through EnvVar, never run config."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator

import dagster as dg
import psycopg

from mentor_pipeline.db import connect
from mentor_pipeline.dynamics.errors import DynamicsConfigError
from mentor_pipeline.dynamics.settings import DEFAULT_AUTHORITY, DynamicsSettings


class AppDatabase(dg.ConfigurableResource):
    """The app's PostgreSQL (Supabase in production).

    Leave `url` empty to use the process's DATABASE_URL or the embedded server: the one
    decision lives in `mentor_pipeline.db.database_url`.
    """

    url: str = ""

    def connect(self, *, autocommit: bool = False) -> psycopg.Connection:
        return connect(self.url or None, autocommit=autocommit)


class DynamicsResource(dg.ConfigurableResource):
    """HLF's Dataverse org. In definitions every field comes from the environment (EnvVar).

    The connection fields may be empty: jobs that only use Dynamics for the credential health
    check (the nightly expiry) still run, and the check reports the missing configuration.
    """

    url: str = ""
    tenant_id: str = ""
    client_id: str = ""
    client_secret: str = ""
    authority: str = DEFAULT_AUTHORITY
    entity_set: str = "contacts"
    key_attribute: str = "hlf_mentorid"
    listed_attribute: str = "hlf_websitelisted"
    chapter_attribute: str = "hlf_chaptername"
    # Bounded parallelism keeps us far below Dataverse's 52 concurrent requests per user.
    max_in_flight: int = 4
    timeout_seconds: float = 30.0

    def settings(self) -> DynamicsSettings:
        missing = [f"DYNAMICS_{name.upper()}" for name in _REQUIRED_DYNAMICS_FIELDS if not getattr(self, name)]
        if missing:
            raise DynamicsConfigError(f"Dynamics is not configured: set {', '.join(missing)} for the Dagster code server")
        return DynamicsSettings(**{field.name: getattr(self, field.name) for field in dataclasses.fields(DynamicsSettings)})

    @contextlib.contextmanager
    def open_client(self) -> Iterator["DataverseClient"]:  # noqa: F821 - imported lazily
        from mentor_pipeline.dynamics import DataverseClient

        with DataverseClient(self.settings(), max_in_flight=self.max_in_flight, timeout=self.timeout_seconds) as client:
            yield client


_REQUIRED_DYNAMICS_FIELDS = ["url", "tenant_id", "client_id", "client_secret"]
_OPTIONAL_DYNAMICS_ENV = {
    "authority": "DYNAMICS_AUTHORITY",
    "entity_set": "DYNAMICS_ENTITY_SET",
    "key_attribute": "DYNAMICS_KEY_ATTRIBUTE",
    "listed_attribute": "DYNAMICS_LISTED_ATTRIBUTE",
    "chapter_attribute": "DYNAMICS_CHAPTER_ATTRIBUTE",
}


def dynamics_from_env() -> DynamicsResource:
    """The resource as definitions use it: values resolved from the environment at run time.

    Only variables set when the code location loads are wired (runs inherit that environment);
    an EnvVar for an unset variable would fail every run at resource setup instead.
    """
    names = {field: f"DYNAMICS_{field.upper()}" for field in _REQUIRED_DYNAMICS_FIELDS} | _OPTIONAL_DYNAMICS_ENV
    return DynamicsResource(**{field: dg.EnvVar(var) for field, var in names.items() if os.environ.get(var)})


def dynamics_resource_for(settings: DynamicsSettings, **options) -> DynamicsResource:
    """A resource for explicit settings (the break-glass CLI and tests)."""
    return DynamicsResource(**dataclasses.asdict(settings), **options)
