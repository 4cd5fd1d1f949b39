"""Dagster resources shared by every domain: the app database, Dynamics and the website sync's
settings. Secrets arrive through EnvVar, never run config."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from collections.abc import Iterator
from datetime import timedelta

import dagster as dg
import psycopg

from mentor_pipeline import settings as environment
from mentor_pipeline.db import connect
from mentor_pipeline.dynamics import settings as dynamics_settings
from mentor_pipeline.dynamics.errors import DynamicsConfigError
from mentor_pipeline.dynamics.settings import DynamicsSettings
from mentor_pipeline.sync.run import POLL_INTERVAL_SECONDS, Alerts, Drain
from mentor_pipeline.sync.store import QueuePolicy

# The one Dataverse service-protection budget (6000 requests per 5 minutes, 52 concurrent, per
# application user) that every step and job calling Dynamics shares. dagster.yaml limits both to
# one at a time: the pool holds steps (the UI's "Materialize" runs as Dagster's own asset job),
# the tag holds runs, so a second Dynamics run waits in the queue instead of holding a process.
# tests/test_definitions.py proves every Dynamics asset, op and job carries them.
DYNAMICS_POOL = "dynamics"
DYNAMICS_TAG = "mentor_pipeline/dynamics"

# What every asset of the website's listing in Dynamics shares (the listing, its reconciliation,
# the drift found): where the UI groups them, who owns them, what they touch, the one Dynamics pool.
WEBSITE_SYNC_ASSET = {
    "group_name": "website_sync",
    "owners": ["team:hlf-website-sync"],
    "kinds": {"dynamics365", "postgres"},
    "pool": DYNAMICS_POOL,
}


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


_POLICY = QueuePolicy()


class SyncSettings(dg.ConfigurableResource):
    """The drain's claim/lease/retry policy (defaults: mentor_pipeline.sync.store.QueuePolicy)
    and the sync's alerting bounds (defaults and variables: mentor_pipeline/settings.py)."""

    batch_size: int = _POLICY.batch_size
    lease_seconds: float = _POLICY.lease.total_seconds()
    max_attempts: int = _POLICY.max_attempts
    backoff_base_seconds: float = _POLICY.backoff_base.total_seconds()
    backoff_max_seconds: float = _POLICY.backoff_max.total_seconds()
    # One run drains what is due, but hands over to the next sensor-started run after this long.
    time_budget_seconds: float = 600.0
    # A run stays warm this long after its last batch: changes arriving meanwhile are written
    # within a second, without a new run's launch (several seconds on a small machine).
    linger_seconds: float = 30.0
    poll_interval_seconds: float = POLL_INTERVAL_SECONDS
    # Dataverse unreachable (5xx, timeouts) or throttling waits added up for longer than this
    # opens dynamics_unreachable / dynamics_throttled (mentor_pipeline/sync/health.py).
    stall_alert_minutes: float = environment.STALL_ALERT_MINUTES.default
    # The freshness promise: no due change waits longer than this (mentor_pipeline/sync/health.py).
    freshness_minutes: float = environment.FRESHNESS_MINUTES.default
    # While a sign-in incident is open, the sensor starts no drain and re-checks the credentials
    # (WhoAmI) this often.
    credential_check_minutes: float = environment.CREDENTIAL_CHECK_MINUTES.default

    def policy(self) -> QueuePolicy:
        return QueuePolicy(
            batch_size=self.batch_size,
            lease=timedelta(seconds=self.lease_seconds),
            max_attempts=self.max_attempts,
            backoff_base=timedelta(seconds=self.backoff_base_seconds),
            backoff_max=timedelta(seconds=self.backoff_max_seconds),
        )

    def stall_bound(self) -> timedelta:
        return timedelta(minutes=self.stall_alert_minutes)

    def drain(self, connect, client, *, alerts: Alerts | None = None, log: logging.Logger | None = None) -> Drain:
        """A drain with this policy and stall bound (its limits are `Drain.run`'s)."""
        return Drain(connect, client, alerts=alerts, log=log, policy=self.policy(), stall_bound=self.stall_bound())

    def freshness_limit(self) -> timedelta:
        return timedelta(minutes=self.freshness_minutes)

    def credential_check_interval(self) -> timedelta:
        return timedelta(minutes=self.credential_check_minutes)


# Operators tune the alerting bounds through the environment of the Dagster processes.
SYNC_SETTINGS_ENV = {
    "stall_alert_minutes": environment.STALL_ALERT_MINUTES,
    "freshness_minutes": environment.FRESHNESS_MINUTES,
    "credential_check_minutes": environment.CREDENTIAL_CHECK_MINUTES,
}


def sync_settings_from_env(environ=os.environ) -> SyncSettings:
    """SyncSettings with the bounds the environment sets (minutes, fractions allowed); a value
    that is not a positive number stops the code location with one line naming it. The Dagster
    resource and the break-glass CLI both read their settings here."""
    values = {}
    for field, variable in SYNC_SETTINGS_ENV.items():
        raw = environ.get(variable.name, "").strip()
        if not raw:
            continue
        try:
            values[field] = float(raw)
        except ValueError:
            values[field] = -1.0
        if not values[field] > 0:
            raise ValueError(f"{variable.name} must be a positive number of minutes, e.g. {variable.default:g} "
                             f"(got {raw!r}): fix it in the Dagster processes' environment")
    return SyncSettings(**values)
