"""Secrets out of text people read (alerts, logs, error messages, run-failure lines, metadata).

One helper for every URL and every message that may hold one: `redact_url` for a URL we print
ourselves (DATABASE_URL, DYNAMICS_URL, the authority, a webhook), `redact` for any text, which
redacts every URL inside it the same way, plus the configured secret values themselves and the
other shapes a secret takes in error messages (bearer tokens, `secret=...`, libpq's
`password=...`). A URL loses its user info (user and password) and the value of every query
parameter that looks like a credential. Neither function raises, even on a URL too malformed
to parse: the raw text is then cut at the user info anyway.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from mentor_pipeline.settings import DATABASE_URL, ENVIRONMENT

REDACTED = "<redacted>"
# Environment variables whose values are secrets wherever they show up.
SECRET_ENV = tuple(variable.name for variable in ENVIRONMENT if variable.secret)
_MIN_SECRET_LENGTH = 6  # shorter values would blank out ordinary words

# Query parameter names (lower case) whose value is a credential: exact names, and parts of
# names (client_secret, sslpassword, x-amz-signature, access_token, api_key ...).
_SECRET_NAMES = {"code", "sig", "auth", "pwd", "pass"}
_SECRET_PARTS = ("password", "passwd", "secret", "token", "signature", "key", "credential")
_URL_IN_TEXT = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]+")
_PATTERNS = [
    (re.compile(r"(?i)\b(bearer)\s+[a-z0-9._~+/=-]{8,}"), rf"\1 {REDACTED}"),
    # key=value and key: value, including libpq's keyword form (password='s e c' quoted).
    (re.compile(r"(?i)\b((?:client_)?secret|(?:ssl)?password|passwd|access_token|api_key)(\s*[=:]\s*)"
                r"('(?:[^'\\]|\\.)*'?|\"[^\"]*\"?|[^\s'\",;&)]+)"), rf"\1\2{REDACTED}"),
]


def known_secrets(extra: Iterable[str] = ()) -> list[str]:
    """Secret values configured in this process, longest first (so a URL goes before its parts)."""
    values = [os.environ.get(name, "") for name in SECRET_ENV] + list(extra)
    database_url = os.environ.get(DATABASE_URL.name, "")
    if database_url:
        try:
            values.append(urlsplit(database_url).password or "")
        except ValueError:
            pass
    return sorted({v for v in values if v and len(v) >= _MIN_SECRET_LENGTH}, key=len, reverse=True)


def redact(text: str, extra_secrets: Iterable[str] = ()) -> str:
    for secret in known_secrets(extra_secrets):
        text = text.replace(secret, REDACTED)
    text = _URL_IN_TEXT.sub(lambda match: redact_url(match.group(0)), text)
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


def is_secret_name(name: str) -> bool:
    lowered = name.strip().lower()
    return lowered in _SECRET_NAMES or any(part in lowered for part in _SECRET_PARTS)


def redact_url(url: str, *, hide_path: bool = False) -> str:
    """`url` without user info and credential query values; `hide_path` also drops path, query
    and fragment (for URLs whose path is the secret, like chat webhooks)."""
    scheme, sep, rest = url.partition("://")
    if not sep:  # not a URL: perhaps libpq's keyword form
        return redact(url)
    # Everything up to the last "@" is user info: an unescaped "/", "?" or "@" in a password
    # must not leave part of it behind (over-hiding a host is the safe mistake).
    if "@" in rest:
        rest = REDACTED + "@" + rest.rpartition("@")[2]
    authority, slash, tail = _split_authority(rest)
    if hide_path:
        return f"{scheme}://{authority}/{REDACTED}" if tail or slash else f"{scheme}://{authority}"
    return f"{scheme}://{authority}{slash}{_redact_query(tail)}"


def _split_authority(rest: str) -> tuple[str, str, str]:
    for index, char in enumerate(rest):
        if char == "/":
            return rest[:index], "/", rest[index + 1:]
        if char in "?#":
            return rest[:index], "", rest[index:]
    return rest, "", ""


def _redact_query(tail: str) -> str:
    path, qmark, query = tail.partition("?")
    if not qmark:
        return tail
    query, hash_, fragment = query.partition("#")
    pairs = []
    for pair in query.split("&"):
        name, eq, value = pair.partition("=")
        pairs.append(f"{name}={REDACTED}" if eq and value and is_secret_name(name) else pair)
    return f"{path}?{'&'.join(pairs)}{hash_}{fragment}"
