"""Dagster resources shared by every domain. Secrets arrive through EnvVar, never run config."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator

import dagster as dg
import psycopg

from mentor_pipeline.db import connect
from mentor_pipeline.dynamics import settings as dynamics_settings
from mentor_pipeline.dynamics.errors import DynamicsConfigError
from mentor_pipeline.dynamics.settings import DynamicsSettings

# The one Dataverse service-protection budget (6000 requests per 5 minutes, 52 concurrent, per
# application user) that every step and job calling Dynamics shares. dagster.yaml limits both to
# one at a time: the pool holds steps (the UI's "Materialize" runs as Dagster's own asset job),
# the tag holds runs, so a second Dynamics run waits in the queue instead of holding a process.
# tests/test_definitions.py proves every Dynamics asset, op and job carries them.
DYNAMICS_POOL = "dynamics"
DYNAMICS_TAG = "mentor_pipeline/dynamics"


def dynamics_run_tags(kind: str) -> dict[str, str]:
    """The job's share of the budget. Job `tags`, not `run_tags`: a run launched from the UI or
    GraphQL carries only the job's tags."""
    return {DYNAMICS_TAG: kind}


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
    authority: str = DynamicsSettings.authority
    entity_set: str = DynamicsSettings.entity_set
    key_attribute: str = DynamicsSettings.key_attribute
    listed_attribute: str = DynamicsSettings.listed_attribute
    chapter_attribute: str = DynamicsSettings.chapter_attribute
    # Bounded parallelism keeps us far below Dataverse's 52 concurrent requests per user.
    max_in_flight: int = 4
    timeout_seconds: float = 30.0

    def settings(self) -> DynamicsSettings:
        missing = [dynamics_settings.ENV[name].name for name in dynamics_settings.REQUIRED if not getattr(self, name)]
        if missing:
            raise DynamicsConfigError(f"Dynamics is not configured: set {', '.join(missing)} for the Dagster code server")
        return DynamicsSettings(**{field.name: getattr(self, field.name) for field in dataclasses.fields(DynamicsSettings)})

    @contextlib.contextmanager
    def open_client(self) -> Iterator["DataverseClient"]:  # noqa: F821 - imported lazily
        from mentor_pipeline.dynamics import DataverseClient

        with DataverseClient(self.settings(), max_in_flight=self.max_in_flight, timeout=self.timeout_seconds) as client:
            yield client


def dynamics_from_env() -> DynamicsResource:
    """The resource as definitions use it: values resolved from the environment at run time.

    Only variables set when the code location loads are wired (runs inherit that environment);
    an EnvVar for an unset variable would fail every run at resource setup instead.
    """
    return DynamicsResource(**{field: dg.EnvVar(variable.name) for field, variable in dynamics_settings.ENV.items()
                               if os.environ.get(variable.name)})


def dynamics_resource_for(settings: DynamicsSettings, **options) -> DynamicsResource:
    """A resource for explicit settings (the break-glass CLI and tests)."""
    return DynamicsResource(**dataclasses.asdict(settings), **options)
