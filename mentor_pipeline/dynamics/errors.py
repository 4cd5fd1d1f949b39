"""Typed errors the pipeline can catch at the right level.

Every message is one line that says what happened and what to do next, and never contains the
client secret or an access token.
"""

from __future__ import annotations


class DynamicsError(Exception):
    """Anything that went wrong talking to Dataverse or Entra ID."""


class DynamicsConfigError(DynamicsError):
    """The settings are incomplete or inconsistent."""


class DynamicsAuthError(DynamicsError):
    """Entra ID refused to issue a token, or Dataverse refused the token. Stop and alert."""

    def __init__(self, message: str, *, aadsts_code: int | None = None, status: int | None = None):
        super().__init__(message)
        self.aadsts_code = aadsts_code
        self.status = status


class InvalidClientSecret(DynamicsAuthError):
    """AADSTS7000215: the secret sent is not a valid secret of the app registration."""


class ExpiredClientSecret(DynamicsAuthError):
    """AADSTS7000222: the secret was valid but has passed its expiry date."""


class DynamicsUnavailable(DynamicsError):
    """Retries are exhausted on 5xx answers or timeouts: the service is not answering."""

    def __init__(self, message: str, *, status: int | None = None, rate_limit_waits: int = 0):
        super().__init__(message)
        self.status = status
        self.rate_limit_waits = rate_limit_waits


class DynamicsProtocolError(DynamicsError):
    """The answer is not what the documented Web API returns (HTML page, cut-off JSON, ...)."""


class DynamicsRequestError(DynamicsError):
    """Dataverse refused a request we expected to succeed (a 4xx on a query, say)."""

    def __init__(self, message: str, *, status: int, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


class ChangeTrackingOff(DynamicsRequestError):
    """The table's Track changes setting is off: Dataverse refuses delta reads (0x80072491)."""


class DeltaTokenExpired(DynamicsRequestError):
    """The delta token is past the change-tracking retention: start over with a full read."""
