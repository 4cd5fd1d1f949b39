"""Microsoft Entra ID's client-credentials token endpoint, as far as Dataverse clients see it.

Error bodies follow what Entra ID returns: `error`, `error_description` starting with the
AADSTS code, `error_codes`, `timestamp`, `trace_id`, `correlation_id`, `error_uri`.
"""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass

from mentor_pipeline.emulator.clock import Clock


@dataclass
class ClientSecret:
    value: str
    expired: bool = False


@dataclass
class IssuedToken:
    client_id: str
    expires_at: float


class Identity:
    def __init__(self, clock: Clock, tenant_id: str, client_id: str, secret: str, token_lifetime: int):
        self.clock = clock
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.secrets = [ClientSecret(secret)]
        self.token_lifetime = token_lifetime
        self.tokens: dict[str, IssuedToken] = {}

    # -- admin -----------------------------------------------------------------------------

    def rotate(self, new_secret: str, keep_old: bool = False) -> None:
        """Add a new secret; unless keep_old, the previous ones stop working (deleted)."""
        self.secrets = ([s for s in self.secrets] if keep_old else []) + [ClientSecret(new_secret)]

    def expire_secrets(self) -> None:
        for s in self.secrets:
            s.expired = True

    def revoke_tokens(self) -> None:
        self.tokens.clear()

    # -- token endpoint --------------------------------------------------------------------

    def issue(self, tenant: str, form: dict[str, str], resource: str) -> tuple[int, dict]:
        if tenant != self.tenant_id:
            return self._error(400, "invalid_request", 90002,
                               f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID "
                               "and are signing into the correct cloud.")
        if form.get("grant_type") != "client_credentials":
            return self._error(400, "unsupported_grant_type", 70003,
                               "The app requested an unsupported grant type "
                               f"'{form.get('grant_type', '')}'.")
        client_id = form.get("client_id", "")
        if client_id != self.client_id:
            return self._error(400, "unauthorized_client", 700016,
                               f"Application with identifier '{client_id}' was not found in the directory "
                               f"'{self.tenant_id}'.")
        scope = form.get("scope", "")
        if not scope.endswith("/.default"):
            return self._error(400, "invalid_scope", 1002012,
                               f"The provided value for scope {scope} is not valid. Client credential flows must "
                               "have a scope value with /.default suffixed to the resource identifier "
                               "(application ID URI).")
        if scope[: -len("/.default")].rstrip("/").lower() != resource.rstrip("/").lower():
            return self._error(400, "invalid_resource", 500011,
                               f"The resource principal named {scope[: -len('/.default')]} was not found in the "
                               f"tenant named {self.tenant_id}.")
        offered = form.get("client_secret")
        if not offered:
            return self._error(401, "invalid_client", 7000218,
                               "The request body must contain the following parameter: 'client_assertion' or "
                               "'client_secret'.")
        match = next((s for s in self.secrets if secrets.compare_digest(s.value, offered)), None)
        if match is None:
            return self._error(401, "invalid_client", 7000215,
                               "Invalid client secret provided. Ensure the secret being sent in the request is "
                               "the client secret value, not the client secret ID, for a secret added to app "
                               f"'{self.client_id}'.")
        if match.expired:
            return self._error(401, "invalid_client", 7000222,
                               f"The provided client secret keys for app '{self.client_id}' are expired. Visit "
                               "the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, "
                               "or consider using certificate credentials for added security: "
                               "https://aka.ms/certCreds.")
        value = secrets.token_urlsafe(32)
        self.tokens[value] = IssuedToken(client_id, self.clock.now() + self.token_lifetime)
        return 200, {"token_type": "Bearer", "expires_in": self.token_lifetime,
                     "ext_expires_in": self.token_lifetime, "access_token": value}

    def authenticate(self, authorization: str | None) -> str | None:
        """The client id a valid bearer token belongs to, or None (-> 401)."""
        if not authorization or not authorization.startswith("Bearer "):
            return None
        token = self.tokens.get(authorization[len("Bearer "):].strip())
        if token is None or token.expires_at <= self.clock.now():
            return None
        return token.client_id

    def _error(self, status: int, error: str, code: int, text: str) -> tuple[int, dict]:
        stamp = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(self.clock.wall()))
        trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
        return status, {
            "error": error,
            "error_description": f"AADSTS{code}: {text}\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}"
                                 f"\r\nTimestamp: {stamp}",
            "error_codes": [code],
            "timestamp": stamp,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": f"https://login.microsoftonline.com/error?code={code}",
        }
