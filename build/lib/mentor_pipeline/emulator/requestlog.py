"""What the emulator received: the evidence tests assert on. Secrets and tokens never stored."""

from __future__ import annotations

import json
from collections import deque

KEPT_HEADERS = ("accept", "content-type", "if-match", "if-none-match", "prefer", "odata-version",
                "odata-maxversion")


class RequestLog:
    def __init__(self, limit: int = 200_000):
        self._entries: deque[dict] = deque(maxlen=limit)
        self._seq = 0

    def add(self, **entry) -> dict:
        self._seq += 1
        entry = {"seq": self._seq, **entry}
        self._entries.append(entry)
        return entry

    def entries(self, since: int = 0) -> list[dict]:
        return [e for e in self._entries if e["seq"] > since]

    def clear(self) -> None:
        self._entries.clear()


def kept_headers(headers) -> dict[str, str]:
    kept = {name: headers[name] for name in KEPT_HEADERS if name in headers}
    if "authorization" in headers:
        scheme = headers["authorization"].split(" ", 1)[0]
        kept["authorization"] = f"{scheme} <redacted>"
    return kept


def loggable_body(content_type: str, body: bytes) -> object:
    if not body:
        return None
    if "json" in content_type:
        try:
            return json.loads(body)
        except ValueError:
            pass
    text = body.decode(errors="replace")
    return text if len(text) <= 4000 else text[:4000] + "..."
