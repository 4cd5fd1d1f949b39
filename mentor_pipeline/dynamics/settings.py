"""Where the Dataverse org is and how we sign in to it, read from the environment.

The client secret is held in a field excluded from repr/str so it never reaches logs, errors,
Dagster metadata or test output.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from mentor_pipeline import settings as environment
from mentor_pipeline.dynamics.errors import DynamicsConfigError
from mentor_pipeline.redaction import redact_url

API_PATH = "/api/data/v9.2/"

# Where each field comes from (mentor_pipeline/settings.py has the defaults); the Dagster
# resource (mentor_pipeline/resources.py) reads the same variables.
ENV = {
    "url": environment.DYNAMICS_URL,
    "tenant_id": environment.DYNAMICS_TENANT_ID,
    "client_id": environment.DYNAMICS_CLIENT_ID,
    "client_secret": environment.DYNAMICS_CLIENT_SECRET,
    "authority": environment.DYNAMICS_AUTHORITY,
    "entity_set": environment.DYNAMICS_ENTITY_SET,
    "key_attribute": environment.DYNAMICS_KEY_ATTRIBUTE,
    "listed_attribute": environment.DYNAMICS_LISTED_ATTRIBUTE,
    "chapter_attribute": environment.DYNAMICS_CHAPTER_ATTRIBUTE,
}
REQUIRED = ("url", "tenant_id", "client_id", "client_secret")


@dataclass(frozen=True)
class DynamicsSettings:
    url: str
    tenant_id: str
    client_id: str
    client_secret: str = field(repr=False)
    authority: str = environment.DYNAMICS_AUTHORITY.default
    # HLF's schema names: configuration, because a Dataverse customiser may rename them.
    entity_set: str = environment.DYNAMICS_ENTITY_SET.default
    key_attribute: str = environment.DYNAMICS_KEY_ATTRIBUTE.default
    listed_attribute: str = environment.DYNAMICS_LISTED_ATTRIBUTE.default
    chapter_attribute: str = environment.DYNAMICS_CHAPTER_ATTRIBUTE.default

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DynamicsSettings:
        env = os.environ if env is None else env
        missing = [ENV[name].name for name in REQUIRED if not env.get(ENV[name].name)]
        if missing:
            raise DynamicsConfigError(
                f"Missing environment variable(s) {', '.join(missing)}: set them to the Dataverse "
                "org URL and the app registration's tenant, client id and client secret."
            )
        return cls(**{name: env[variable.name] for name, variable in ENV.items() if env.get(variable.name)})

    @property
    def org_url(self) -> str:
        return self.url.rstrip("/")

    @property
    def api_base(self) -> str:
        """Web API service root, ending in a slash so relative paths join onto it."""
        return self.org_url + API_PATH

    @property
    def token_url(self) -> str:
        return f"{self.authority.rstrip('/')}/{self.tenant_id}/oauth2/v2.0/token"

    @property
    def scope(self) -> str:
        # Client credentials take the resource's static permissions: "{resource}/.default".
        return f"{self.org_url}/.default"

    def __repr__(self) -> str:
        # The URLs too: someone may have put credentials in DYNAMICS_URL or the authority.
        return (f"DynamicsSettings(url={redact_url(self.url)!r}, tenant_id={self.tenant_id!r},"
                f" client_id={self.client_id!r}, authority={redact_url(self.authority)!r},"
                f" entity_set={self.entity_set!r})")

    def __str__(self) -> str:
        return repr(self)

