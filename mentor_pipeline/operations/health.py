"""Credential health check: WhoAmI before each nightly reconciliation, so a client
secret that HLF IT rotated or that expired without telling us shows up before the night's writes.

One failed WhoAmI alerts at once, naming the cause (wrong or expired secret), never the
secret itself; we do not wait for N consecutive failures. A passing check resolves the sign-in
incidents it proves over.
"""

from __future__ import annotations

import logging

from mentor_pipeline.dynamics.errors import DynamicsError
from mentor_pipeline.operations.alerts import AlertSink
from mentor_pipeline.vocabulary import IncidentKind, incident_kind_for

logger = logging.getLogger("mentor_pipeline.operations.health")

# What the alert says, per incident kind a failed WhoAmI can be.
_SUMMARY = {
    IncidentKind.DYNAMICS_AUTH_WRONG_SECRET: "Dynamics rejected the client secret (AADSTS7000215): "
                                             "ask HLF IT for the current secret and update DYNAMICS_CLIENT_SECRET.",
    IncidentKind.DYNAMICS_AUTH_EXPIRED_SECRET: "the Dynamics client secret has expired (AADSTS7000222): "
                                               "ask HLF IT to issue a new secret and update DYNAMICS_CLIENT_SECRET.",
    IncidentKind.DYNAMICS_AUTH_FAILED: "Dynamics authentication failed: {exc}",
    IncidentKind.DYNAMICS_NOT_CONFIGURED: "{exc}",
    IncidentKind.DYNAMICS_UNREACHABLE: "Dynamics health check failed: {exc}",
}

# Incidents a successful WhoAmI proves over: each posts "resolved" once if it was open.
CLEARED_BY_A_HEALTHY_CHECK = tuple(_SUMMARY)


def check_dynamics_credentials(dynamics, alerts: AlertSink, log: logging.Logger | None = None) -> bool:
    """WhoAmI against Dataverse. True when healthy; alerts and returns False otherwise."""
    return dynamics_credential_problem(dynamics, alerts, log) is None


def dynamics_credential_problem(dynamics, alerts: AlertSink, log: logging.Logger | None = None) -> str | None:
    """WhoAmI against Dataverse. None when healthy; otherwise alerts and returns the one-line summary."""
    log = log or logger
    try:
        with dynamics.open_client() as client:
            client.whoami()
    except DynamicsError as exc:
        kind = incident_kind_for(exc)
        summary = _SUMMARY[kind].format(exc=exc)
    else:
        log.info("Dynamics credentials are valid (WhoAmI succeeded)")
        for kind in CLEARED_BY_A_HEALTHY_CHECK:
            alerts.resolve(kind, "Dynamics sign-in works again (WhoAmI succeeded)")
        return None
    log.error(summary)
    alerts.alert(kind, summary)
    return summary
