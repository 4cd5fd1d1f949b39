"""Alerts for operators: always logged; also posted as JSON to a chat webhook when configured.

The webhook URL is a secret (it lets anyone post into the channel): it comes from the
environment only, and neither it nor a delivery error that might echo it is ever logged.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import dagster as dg
import httpx

logger = logging.getLogger("mentor_pipeline.alerts")


class _HideWebhookUrls(logging.Filter):
    """httpx logs every request URL at INFO; a webhook URL is a credential, so mask it."""

    urls: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(url in message for url in self.urls):
            for url in self.urls:
                message = message.replace(url, "<alert webhook>")
            record.msg, record.args = message, ()
        return True


_hide_webhook_urls = _HideWebhookUrls()
logging.getLogger("httpx").addFilter(_hide_webhook_urls)


class AlertSink(dg.ConfigurableResource):
    """Where alerts go. `webhook_url` empty means: log only."""

    webhook_url: str = ""
    timeout_seconds: float = 5.0

    def alert(self, kind: str, summary: str, details: dict | None = None) -> bool:
        """Raise an alert now. Returns whether the webhook (if any) accepted it; never raises."""
        logger.error("ALERT [%s] %s %s", kind, summary, details or "")
        if not self.webhook_url:
            return True
        payload = {
            "kind": kind,
            "summary": summary,
            # Slack and Teams incoming webhooks both render a top-level "text".
            "text": f"[mentor_pipeline] {kind}: {summary}",
            "details": details or {},
            "raised_at": datetime.now(timezone.utc).isoformat(),
        }
        _hide_webhook_urls.urls.add(self.webhook_url)
        try:
            response = httpx.post(self.webhook_url, json=payload, timeout=self.timeout_seconds)
            response.raise_for_status()
            return True
        except httpx.HTTPError as exc:
            # The exception text can contain the URL: log only its type and status.
            status = getattr(getattr(exc, "response", None), "status_code", None)
            logger.warning("alert webhook delivery failed (%s%s)", type(exc).__name__, f", HTTP {status}" if status else "")
            return False


def alert_sink_from_env() -> AlertSink:
    """For code running outside Dagster (CLI): the same sink, configured from the environment."""
    import os

    return AlertSink(webhook_url=os.environ.get("ALERT_WEBHOOK_URL", ""))
