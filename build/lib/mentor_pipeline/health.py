"""Credential health check: WhoAmI before each nightly reconciliation (seed risk: silent rotation).

One failed WhoAmI alerts at once, naming the cause (wrong or expired secret), never the
secret itself; we do not wait for N consecutive failures. A passing check resolves the sign-in
incidents it proves over.
"""

from __future__ import annotations

import logging

from mentor_pipeline.alerts import AlertSink
from mentor_pipeline.dynamics.errors import (
    DynamicsAuthError,
    DynamicsConfigError,
    DynamicsError,
    ExpiredClientSecret,
    InvalidClientSecret,
)

logger = logging.getLogger("mentor_pipeline.health")

_AUTH_ADVICE = {
    InvalidClientSecret: ("dynamics_auth_wrong_secret", "Dynamics rejected the client secret (AADSTS7000215): "
                          "ask HLF IT for the current secret and update DYNAMICS_CLIENT_SECRET."),
    ExpiredClientSecret: ("dynamics_auth_expired_secret", "the Dynamics client secret has expired (AADSTS7000222): "
                          "ask HLF IT to issue a new secret and update DYNAMICS_CLIENT_SECRET."),
}


# Sign-in incidents: while one is open, sync_queue_sensor starts no drain (each would fail the same
# way) and re-checks the credentials now and then instead.
SIGN_IN_INCIDENTS = ("dynamics_auth_wrong_secret", "dynamics_auth_expired_secret", "dynamics_auth_failed")

# Incidents a successful WhoAmI proves over: each posts "resolved" once if it was open.
CLEARED_BY_A_HEALTHY_CHECK = (*SIGN_IN_INCIDENTS,
                              "dynamics_not_configured", "dynamics_unreachable", "dynamics_health_check_failed")


def check_dynamics_credentials(dynamics, alerts: AlertSink, log: logging.Logger | None = None) -> bool:
    """WhoAmI against Dataverse. True when healthy; alerts and returns False otherwise."""
    return dynamics_credential_problem(dynamics, alerts, log) is None


def dynamics_credential_problem(dynamics, alerts: AlertSink, log: logging.Logger | None = None) -> str | None:
    """WhoAmI against Dataverse. None when healthy; otherwise alerts and returns the one-line summary."""
    log = log or logger
    try:
        with dynamics.open_client() as client:
            client.whoami()
    except DynamicsAuthError as exc:
        kind, summary = _AUTH_ADVICE.get(type(exc), ("dynamics_auth_failed", f"Dynamics authentication failed: {exc}"))
    except DynamicsConfigError as exc:
        kind, summary = "dynamics_not_configured", str(exc)
    except DynamicsError as exc:
        kind, summary = "dynamics_unreachable", f"Dynamics health check failed: {exc}"
    else:
        log.info("Dynamics credentials are valid (WhoAmI succeeded)")
        for kind in CLEARED_BY_A_HEALTHY_CHECK:
            alerts.resolve(kind, "Dynamics sign-in works again (WhoAmI succeeded)")
        return None
    log.error(summary)
    alerts.alert(kind, summary)
    return summary
