"""OAuth2 client-credentials tokens from Microsoft Entra ID, cached and renewed early, and the
`httpx.Auth` that puts them on Dataverse requests (`BearerTokenAuth`: on a 401 it fetches a new
token once and resends).

A plain httpx POST rather than msal: msal only accepts an https:// authority, and the emulator
serves the token endpoint over plain HTTP on loopback (see docs/design/dynamics.md).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass

import httpx

from mentor_pipeline.dynamics.errors import (
    DynamicsAuthError,
    DynamicsProtocolError,
    DynamicsUnavailable,
    ExpiredClientSecret,
    InvalidClientSecret,
)
from mentor_pipeline.dynamics.settings import DynamicsSettings
from mentor_pipeline.dynamics.transport import RATE_LIMIT_WAITS, WHAT, rate_limit_waits
from mentor_pipeline.redaction import redact, redact_url

# Renew this long before expiry (or at half-life for short tokens), so a request never leaves
# with a token that dies in flight.
RENEW_MARGIN_SECONDS = 300.0


@dataclass(frozen=True)
class AccessToken:
    value: str
    renew_at: float  # on the provider's clock

    def __repr__(self) -> str:
        return f"AccessToken(renew_at={self.renew_at!r})"


class TokenProvider:
    """Thread-safe token cache. `http` is the client for Entra ID's token endpoint (with its own
    retry transport: mentor_pipeline/dynamics/transport.py)."""

    def __init__(
        self,
        settings: DynamicsSettings,
        http: httpx.Client,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._settings = settings
        self._http = http
        self._clock = clock
        self._lock = threading.Lock()
        self._token: AccessToken | None = None
        self.requests = 0

    def form(self) -> dict[str, str]:
        s = self._settings
        return {
            "client_id": s.client_id,
            "client_secret": s.client_secret,
            "grant_type": "client_credentials",
            "scope": s.scope,
        }

    def token(self) -> str:
        with self._lock:
            if self._token is None or self._clock() >= self._token.renew_at:
                self._token = self._fetch()
            return self._token.value

    def invalidate(self, value: str) -> None:
        """Forget a token Dataverse rejected, unless another thread already replaced it."""
        with self._lock:
            if self._token is not None and self._token.value == value:
                self._token = None

    def _fetch(self) -> AccessToken:
        started = self._clock()
        self.requests += 1
        response = self._post_form()
        body = _json_object(response, "Entra ID token endpoint")
        if response.status_code != 200:
            raise auth_error_from(response.status_code, body, self._settings)
        value, expires_in = body.get("access_token"), body.get("expires_in")
        if not isinstance(value, str) or not value:
            raise DynamicsProtocolError(
                "Entra ID answered 200 without an access_token: check DYNAMICS_AUTHORITY points at "
                "the Entra ID login endpoint."
            )
        try:
            lifetime = float(expires_in)
        except (TypeError, ValueError):
            raise DynamicsProtocolError(
                "Entra ID answered without a numeric expires_in: check DYNAMICS_AUTHORITY."
            ) from None
        margin = min(RENEW_MARGIN_SECONDS, lifetime / 2)
        return AccessToken(value=value, renew_at=started + lifetime - margin)

    def _post_form(self) -> httpx.Response:
        try:
            return self._http.post(self._settings.token_url, data=self.form(), headers={"Accept": "application/json"},
                                   extensions={WHAT: "the token request"})
        except DynamicsUnavailable as exc:
            raise DynamicsUnavailable(
                f"{exc} Check DYNAMICS_AUTHORITY ({redact_url(self._settings.authority)}) is reachable.",
                status=exc.status) from None


class BearerTokenAuth(httpx.Auth):
    """The token on every request; on a 401 (a token revoked or expired server-side before our
    renewal time) a new token once, then the request again. A second 401 is the caller's to judge.

    `sync_auth_flow`, not `auth_flow`: the token cache takes a lock and may do I/O (httpx's rule
    for such flows); the client is synchronous."""

    def __init__(self, tokens: TokenProvider):
        self._tokens = tokens

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self._tokens.token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code != 401:
            return
        waits = rate_limit_waits(response)
        self._tokens.invalidate(token)  # unless another worker already replaced it
        request.headers["Authorization"] = f"Bearer {self._tokens.token()}"
        response = yield request
        response.extensions[RATE_LIMIT_WAITS] = waits + rate_limit_waits(response)

    async def async_auth_flow(self, request):  # pragma: no cover - the client is synchronous
        raise NotImplementedError("BearerTokenAuth is for httpx.Client only")
        yield request


def auth_error_from(status: int, body: dict, settings: DynamicsSettings) -> DynamicsAuthError:
    codes = body.get("error_codes") or []
    code = codes[0] if codes and isinstance(codes[0], int) else None
    error = body.get("error", "unknown_error")
    # error_description holds trace ids and newlines; keep its first sentence only. It may echo
    # the scope, i.e. DYNAMICS_URL with whatever credentials someone put in it.
    description = str(body.get("error_description", "")).splitlines()[0] if body.get("error_description") else ""
    description = redact(description)
    app = settings.client_id
    if code == 7000215:
        return InvalidClientSecret(
            f"Entra ID rejected the client secret for app {app} (AADSTS7000215, wrong secret): "
            "set DYNAMICS_CLIENT_SECRET to the secret's value (not its id) from the app registration.",
            aadsts_code=code, status=status,
        )
    if code == 7000222:
        return ExpiredClientSecret(
            f"The client secret for app {app} has expired (AADSTS7000222): create a new secret in "
            "the app registration and update DYNAMICS_CLIENT_SECRET.",
            aadsts_code=code, status=status,
        )
    return DynamicsAuthError(
        f"Entra ID refused a token for app {app} in tenant {settings.tenant_id} "
        f"(HTTP {status}, {error}): {description or 'no description'} "
        "Check DYNAMICS_TENANT_ID, DYNAMICS_CLIENT_ID and the app's access to the org.",
        aadsts_code=code, status=status,
    )


def _json_object(response: httpx.Response, what: str) -> dict:
    try:
        body = json.loads(response.content)
    except ValueError:
        kind = response.headers.get("content-type", "no content type")
        raise DynamicsProtocolError(
            f"{what} answered HTTP {response.status_code} with {kind} that is not JSON: "
            "check DYNAMICS_AUTHORITY and any proxy in between."
        ) from None
    if not isinstance(body, dict):
        raise DynamicsProtocolError(f"{what} answered JSON that is not an object: check DYNAMICS_AUTHORITY.")
    return body
