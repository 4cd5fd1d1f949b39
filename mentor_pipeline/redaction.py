"""Secrets out of text people read (alerts, run-failure lines): the configured secret values
themselves, plus the shapes a secret takes in error messages (URL passwords, bearer tokens,
`secret=...`)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

REDACTED = "<redacted>"
# Environment variables whose values are secrets wherever they show up.
SECRET_ENV = ("DYNAMICS_CLIENT_SECRET", "ALERT_WEBHOOK_URL", "DAGSTER_PG_PASSWORD")
_MIN_SECRET_LENGTH = 6  # shorter values would blank out ordinary words

_PATTERNS = [
    (re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^:/@\s]+:)[^@\s]+@"), rf"\1{REDACTED}@"),  # scheme://user:password@
    (re.compile(r"(?i)\b(bearer)\s+[a-z0-9._~+/=-]{8,}"), rf"\1 {REDACTED}"),
    (re.compile(r"(?i)\b((?:client_)?secret|password|passwd|access_token|api_key)(\s*[=:]\s*)(['\"]?)[^\s'\",;&)]+\3"),
     rf"\1\2{REDACTED}"),
]


def known_secrets(extra: Iterable[str] = ()) -> list[str]:
    """Secret values configured in this process, longest first (so a URL goes before its parts)."""
    values = [os.environ.get(name, "") for name in SECRET_ENV] + list(extra)
    database_url = os.environ.get("DATABASE_URL", "")
    if database_url:
        try:
            values.append(urlsplit(database_url).password or "")
        except ValueError:
            pass
    return sorted({v for v in values if v and len(v) >= _MIN_SECRET_LENGTH}, key=len, reverse=True)


def redact(text: str, extra_secrets: Iterable[str] = ()) -> str:
    for secret in known_secrets(extra_secrets):
        text = text.replace(secret, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_value(value: object, extra_secrets: Iterable[str] = ()) -> object:
    """`redact` applied to every string inside JSON-like data (dicts, lists)."""
    if isinstance(value, str):
        return redact(value, extra_secrets)
    if isinstance(value, dict):
        return {key: redact_value(item, extra_secrets) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(item, extra_secrets) for item in value]
    return value
