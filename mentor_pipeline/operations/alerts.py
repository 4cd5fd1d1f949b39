"""Alerts for operators, as incidents: every alert is logged and recorded as an occurrence of its
incident (mentor_pipeline/operations/store.py); the chat webhook only hears when an incident opens,
when a reminder is due and when it is resolved.

The webhook URL is a secret (it lets anyone post into the channel): it comes from the
environment only, and neither it nor a delivery error that might echo it is ever logged.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta, timezone

import dagster as dg
import httpx
import psycopg

from mentor_pipeline import settings as environment
from mentor_pipeline.db.connection import DatabaseError, first_line
from mentor_pipeline.operations import store
from mentor_pipeline.redaction import redact, redact_url, redact_value
from mentor_pipeline.resources import AppDatabase

logger = logging.getLogger("mentor_pipeline.operations.alerts")


class _HideWebhookUrls(logging.Filter):
    """httpx logs every request URL at INFO: a webhook URL is a credential as a whole (its path
    is the secret), and any other URL loses its user info and credential query values."""

    urls: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        safe = message
        for url in self.urls:
            safe = safe.replace(url, redact_url(url, hide_path=True))
        safe = redact(safe)
        if safe != message:
            record.msg, record.args = safe, ()
        return True


_hide_webhook_urls = _HideWebhookUrls()
logging.getLogger("httpx").addFilter(_hide_webhook_urls)


class AlertSink(dg.ConfigurableResource):
    """Where alerts go: incidents in the app database, and the webhook for what people must hear.
    `database_url` means what `AppDatabase.url` means (empty: DATABASE_URL, else the embedded
    server); `webhook_url` empty means: log only."""

    database_url: str = ""
    webhook_url: str = ""
    timeout_seconds: float = 5.0
    # Reminders while an incident stays open, in minutes: the last one repeats.
    reminder_minutes: list[float] = list(environment.ALERT_REMINDER_MINUTES.default)

    def alert(self, kind: str, summary: str, details: dict | None = None, *, scope: str = "") -> bool:
        """One occurrence of incident (kind, scope). Posts only when it opens the incident or a
        reminder is due. Returns whether the webhook (if it was needed) took it; never raises."""
        summary = redact(summary, [self.webhook_url])
        details = redact_value(details or {}, [self.webhook_url])
        try:
            with self._connect() as conn:
                notice = store.raise_incident(conn, kind, scope, summary, details,
                                                  reminder_intervals=self._intervals())
        except (psycopg.Error, DatabaseError) as exc:
            # Better one post too many than silence: without the incident store, post as new.
            logger.error("ALERT [%s] %s %s (incident store unavailable: %s)", _key(kind, scope), summary,
                         details, first_line(exc))
            return self._post(_payload_without_store(kind, scope, summary, details))
        incident = notice.incident
        logger.error("ALERT [%s] %s %s (%s since %s, %d occurrence(s)%s)", incident.key, summary, details,
                     incident.state, f"{incident.first_seen:%Y-%m-%d %H:%M:%S %Z}", incident.occurrences,
                     f"; posting {notice.notify}" if notice.notify else "")
        if notice.notify is None:
            return True
        delivered = self._post(payload(notice))
        if not delivered:
            try:
                with self._connect() as conn:
                    store.delivery_failed(conn, kind, scope)
            except (psycopg.Error, DatabaseError):
                pass  # the next occurrence after the reminder time posts anyway
        return delivered

    def resolve(self, kind: str, summary: str, scope: str = "") -> bool:
        """The condition behind (kind, scope) cleared: posts one "resolved" if it was open.
        Cheap when nothing is open; never raises."""
        summary = redact(summary, [self.webhook_url])
        try:
            with self._connect() as conn:
                notice = store.resolve_incident(conn, kind, scope, summary)
        except (psycopg.Error, DatabaseError) as exc:
            logger.warning("could not resolve incident %s: %s", _key(kind, scope), first_line(exc))
            return False
        if notice is None:
            return True
        logger.warning("RESOLVED [%s] %s (open since %s, %d occurrence(s))", notice.incident.key, summary,
                       f"{notice.incident.first_seen:%Y-%m-%d %H:%M:%S %Z}", notice.incident.occurrences)
        return self._post(payload(notice))

    def _connect(self) -> psycopg.Connection:
        # Not a nested AppDatabase resource: Dagster 1.13 warns about its own deprecated API then.
        return AppDatabase(url=self.database_url).connect(autocommit=True)

    def _intervals(self) -> tuple[timedelta, ...]:
        return tuple(timedelta(minutes=m) for m in self.reminder_minutes) or store.DEFAULT_REMINDER_INTERVALS

    def _post(self, body: dict) -> bool:
        if not self.webhook_url:
            return True
        _hide_webhook_urls.urls.add(self.webhook_url)
        try:
            response = httpx.post(self.webhook_url, json=body, timeout=self.timeout_seconds)
            response.raise_for_status()
            return True
        except httpx.HTTPError as exc:
            # The exception text can contain the URL: log only its type and status.
            status = getattr(getattr(exc, "response", None), "status_code", None)
            logger.warning("alert webhook delivery failed (%s%s)", type(exc).__name__, f", HTTP {status}" if status else "")
            return False


def payload(notice: store.Notice) -> dict:
    """The webhook JSON: the incident's identity, state and history, plus a chat line ("text",
    which Slack and Teams incoming webhooks both render)."""
    incident = notice.incident
    state = notice.notify
    age = store.describe_age((incident.resolved_at or datetime.now(timezone.utc)) - incident.first_seen)
    text = {
        store.OPEN: f"[mentor_pipeline] OPEN {incident.key}: {incident.summary}",
        store.REMINDER: f"[mentor_pipeline] STILL OPEN after {age} ({incident.occurrences} occurrences) "
                            f"{incident.key}: {incident.summary}",
        store.RESOLVED: f"[mentor_pipeline] RESOLVED {incident.key} after {age} "
                            f"({incident.occurrences} occurrences): {incident.resolution}",
    }[state]
    return {
        "kind": incident.kind,
        "scope": incident.scope,
        "incident": incident.key,
        "state": state,
        "first_seen": incident.first_seen.isoformat(),
        "last_seen": incident.last_seen.isoformat(),
        "count": incident.occurrences,
        "reminders_sent": incident.reminders_sent,
        "summary": incident.resolution if state == store.RESOLVED else incident.summary,
        "details": incident.details,
        "text": text,
        "raised_at": datetime.now(timezone.utc).isoformat(),
    }


def _payload_without_store(kind: str, scope: str, summary: str, details: dict) -> dict:
    now = datetime.now(timezone.utc).isoformat()
    return {"kind": kind, "scope": scope, "incident": _key(kind, scope), "state": store.OPEN,
            "first_seen": now, "last_seen": now, "count": 1, "reminders_sent": 0, "summary": summary,
            "details": details, "text": f"[mentor_pipeline] {_key(kind, scope)}: {summary} (incident store unavailable)",
            "raised_at": now}


def _key(kind: str, scope: str) -> str:
    return f"{kind}:{scope}" if scope else kind


def reminder_minutes_from_env(environ=os.environ) -> list[float]:
    """ALERT_REMINDER_MINUTES, e.g. "60,240,1440" (the default): when reminders of an open
    incident go out, the last interval repeating. A bad value stops with one line naming it."""
    variable = environment.ALERT_REMINDER_MINUTES
    raw = environ.get(variable.name, "").strip()
    if not raw:
        return list(variable.default)
    try:
        minutes = [float(part) for part in raw.split(",")]
    except ValueError:
        minutes = []
    if not minutes or any(m <= 0 for m in minutes):
        raise ValueError(f"{variable.name} must be positive minutes separated by commas, e.g. 60,240,1440 "
                         f"(got {raw!r}): fix it in the pipeline's environment")
    return minutes


def alert_sink_from_env() -> AlertSink:
    """For code running outside Dagster (CLI): the same sink, configured from the environment."""
    return AlertSink(webhook_url=os.environ.get(environment.ALERT_WEBHOOK_URL.name, ""),
                     reminder_minutes=reminder_minutes_from_env())
