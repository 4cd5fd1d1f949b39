"""Every environment variable a deployment sets, with its default and what it means: one list.

The code reads each variable by the name here and falls back to the default here (the Dagster
resources and the CLI alike); the README's Configuration table lists exactly these variables
and docs/operations.md names no other (tests/test_settings.py). Imports nothing of the package:
any module may read it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Variable:
    name: str
    default: object  # what applies while the variable is unset; None: nothing (required, or off)
    meaning: str
    secret: bool = False  # its value is redacted wherever it shows up (mentor_pipeline/redaction.py)
    required: bool = False  # a production deployment must set it (.env.example marks it; the image checks it)


# The app database
DATABASE_URL = Variable("DATABASE_URL", None, "the app database (Supabase in production); unset: an embedded "
                                              "PostgreSQL (the `demo` extra), demo and tests only", required=True)
PGDATA = Variable("MENTOR_PIPELINE_PGDATA", ".pgdata/", "where the embedded PostgreSQL keeps its data")
MIGRATE_URL = Variable("MENTOR_PIPELINE_MIGRATE_URL", None, "the app database for the image's migrate step "
                                                            "(mentor_pipeline/service.py): the direct or session-pooler "
                                                            "connection; unset: DATABASE_URL")

# Dynamics (mentor_pipeline/dynamics/settings.py)
DYNAMICS_URL = Variable("DYNAMICS_URL", None, "the Dataverse org URL, e.g. https://hlf.crm4.dynamics.com", required=True)
DYNAMICS_AUTHORITY = Variable("DYNAMICS_AUTHORITY", "https://login.microsoftonline.com", "the Entra ID authority")
DYNAMICS_TENANT_ID = Variable("DYNAMICS_TENANT_ID", None, "the app registration's tenant", required=True)
DYNAMICS_CLIENT_ID = Variable("DYNAMICS_CLIENT_ID", None, "the app registration's client id", required=True)
DYNAMICS_CLIENT_SECRET = Variable("DYNAMICS_CLIENT_SECRET", None, "the app registration's client secret", secret=True,
                                  required=True)
DYNAMICS_ENTITY_SET = Variable("DYNAMICS_ENTITY_SET", "contacts", "HLF's entity set of mentor contacts")
DYNAMICS_KEY_ATTRIBUTE = Variable("DYNAMICS_KEY_ATTRIBUTE", "hlf_mentorid", "the contact's alternate key: the mentor id")
DYNAMICS_LISTED_ATTRIBUTE = Variable("DYNAMICS_LISTED_ATTRIBUTE", "hlf_websitelisted", "the website listing flag")
DYNAMICS_CHAPTER_ATTRIBUTE = Variable("DYNAMICS_CHAPTER_ATTRIBUTE", "hlf_chaptername", "the chapter the page groups by")

# Alerts
ALERT_WEBHOOK_URL = Variable("ALERT_WEBHOOK_URL", None, "Slack/Teams-style incoming webhook; unset: alerts are "
                                                        "only logged and recorded as incidents", secret=True)
ALERT_REMINDER_MINUTES = Variable("ALERT_REMINDER_MINUTES", (60, 240, 1440),
                                  "reminders while an incident stays open, minutes apart; the last repeats")
STALL_ALERT_MINUTES = Variable("MENTOR_PIPELINE_STALL_ALERT_MINUTES", 5.0,
                               "Dynamics unreachable or throttled longer than this is an incident")
FRESHNESS_MINUTES = Variable("MENTOR_PIPELINE_FRESHNESS_MINUTES", 15.0,
                             "the freshness promise: no due change waits longer than this")
CREDENTIAL_CHECK_MINUTES = Variable("MENTOR_PIPELINE_CREDENTIAL_CHECK_MINUTES", 2.0,
                                    "while sign-in is broken, how often the sensor re-checks the credentials")
DRIFT_WATCH_MINUTES = Variable("MENTOR_PIPELINE_DRIFT_WATCH_MINUTES", 3.0,
                               "how often the drift watch reads what changed in Dynamics (change tracking)")

# Nights
FIRST_NIGHT = Variable("MENTOR_PIPELINE_FIRST_NIGHT", None,
                       "the go-live date, the first nightly partition the UI offers (docs/operations.md)", required=True)

# Dagster's own, read by Dagster and the repository's dagster.yaml
DAGSTER_HOME = Variable("DAGSTER_HOME", None, "the folder holding the repository's dagster.yaml (the image sets it)")
DAGSTER_PG_HOST = Variable("DAGSTER_PG_HOST", None, "Dagster's storage database: host", required=True)
DAGSTER_PG_PORT = Variable("DAGSTER_PG_PORT", None, "Dagster's storage database: port", required=True)
DAGSTER_PG_USER = Variable("DAGSTER_PG_USER", None, "Dagster's storage database: user", required=True)
DAGSTER_PG_PASSWORD = Variable("DAGSTER_PG_PASSWORD", None, "Dagster's storage database: password", secret=True,
                               required=True)
DAGSTER_PG_DB = Variable("DAGSTER_PG_DB", None, "Dagster's storage database: name", required=True)
DAGSTER_CURRENT_IMAGE = Variable("DAGSTER_CURRENT_IMAGE", None, "the code server's image, for a container run launcher (the image sets it)")

# All of the above, in this order (the README's order).
ENVIRONMENT = tuple(value for value in dict(globals()).values() if isinstance(value, Variable))
