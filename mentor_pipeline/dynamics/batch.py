"""OData `$batch` bodies: encode requests as multipart/mixed, decode the multipart answer.

Dataverse's format (learn.microsoft.com, "Execute batch operations using the Web API"): each
part is `Content-Type: application/http` + `Content-Transfer-Encoding: binary`, then a raw
HTTP request or response. Responses come back in request order; change-set responses are
nested multipart parts. Lines end in CRLF on the wire; we also accept bare LF.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field

from mentor_pipeline.dynamics.errors import DynamicsProtocolError

CRLF = "\r\n"


@dataclass(frozen=True)
class BatchOperation:
    method: str
    url: str  # absolute path (/api/data/v9.2/...) or full URL
    headers: dict[str, str] = field(default_factory=dict)
    body: object | None = None  # JSON-serialisable


@dataclass(frozen=True)
class PartResponse:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes
    content_id: str | None = None

    def json(self) -> object:
        return json.loads(self.body) if self.body.strip() else None


def encode_batch(operations: list[BatchOperation], boundary: str | None = None) -> tuple[str, bytes]:
    """Return (Content-Type header value, body) for a batch without change sets.

    No change sets on purpose: a change set is all-or-nothing, and we want each update to
    succeed or fail on its own (with `Prefer: odata.continue-on-error`).
    """
    boundary = boundary or f"batch_{uuid.uuid4()}"
    lines: list[str] = []
    for op in operations:
        lines += [f"--{boundary}", "Content-Type: application/http", "Content-Transfer-Encoding: binary", ""]
        lines.append(f"{op.method} {op.url} HTTP/1.1")
        headers = dict(op.headers)
        payload = None
        if op.body is not None:
            headers.setdefault("Content-Type", "application/json")
            payload = json.dumps(op.body, separators=(",", ":"))
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines.append("")
        lines.append(payload or "")
    lines.append(f"--{boundary}--")
    lines.append("")
    return f"multipart/mixed; boundary={boundary}", CRLF.join(lines).encode("utf-8")


def decode_batch_response(content_type: str, body: bytes) -> list[PartResponse]:
    """Flatten a batch response (including change-set responses) into parts, in order."""
    boundary = _boundary(content_type)
    if boundary is None:
        raise DynamicsProtocolError(
            f"Dataverse answered a $batch with {content_type or 'no content type'} instead of "
            "multipart/mixed: check DYNAMICS_URL and any proxy in between."
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise DynamicsProtocolError("Dataverse's $batch answer is not UTF-8 text: retry later.") from None
    segments = text.split(f"--{boundary}")
    if len(segments) < 2 or not segments[-1].startswith("--"):
        raise DynamicsProtocolError(
            "Dataverse's $batch answer is cut off (no closing boundary): the connection probably "
            "dropped; the operations' outcome is unknown, so read the listing back before retrying."
        )
    parts: list[PartResponse] = []
    for segment in segments[1:-1]:
        head, payload = _split_head(segment.lstrip("\r\n"))
        part_type = head.get("content-type", "")
        if part_type.lower().startswith("multipart/mixed"):
            parts.extend(decode_batch_response(part_type, payload.encode("utf-8")))
        else:
            parts.append(_parse_http_response(payload, head.get("content-id")))
    return parts


def _boundary(content_type: str) -> str | None:
    match = re.search(r'boundary="?([^";]+)"?', content_type or "", re.IGNORECASE)
    if not content_type.lower().startswith("multipart/mixed") or match is None:
        return None
    return match.group(1)


def _split_head(text: str) -> tuple[dict[str, str], str]:
    match = re.search(r"\r?\n\r?\n", text)
    if match is None:
        head_text, rest = text, ""
    else:
        head_text, rest = text[: match.start()], text[match.end():]
    headers: dict[str, str] = {}
    for line in re.split(r"\r?\n", head_text):
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return headers, rest


def _parse_http_response(payload: str, content_id: str | None) -> PartResponse:
    status_line, _, rest = payload.partition("\n")
    match = re.match(r"HTTP/\d\.\d (\d{3})", status_line.strip())
    if match is None:
        raise DynamicsProtocolError(
            f"A $batch part does not start with an HTTP status line ({status_line.strip()[:60]!r}): "
            "Dataverse's answer is malformed; retry later."
        )
    headers, body = _split_head(rest)
    return PartResponse(
        status=int(match.group(1)),
        headers=headers,
        body=body.rstrip("\r\n").encode("utf-8"),
        content_id=content_id,
    )
