"""OData `$batch` bodies: encode requests as multipart/mixed, decode the multipart answer.

Dataverse's format (learn.microsoft.com, "Execute batch operations using the Web API"): each
part is `Content-Type: application/http` + `Content-Transfer-Encoding: binary`, then a raw
HTTP request or response. Responses come back in request order; change-set responses are
nested multipart parts. Decoding is the standard library's MIME parser (`multipart`).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field

from mentor_pipeline.dynamics import multipart
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
    message = multipart.parse_multipart(content_type, body)
    if not multipart.has_boundary(message):
        raise DynamicsProtocolError(
            f"Dataverse answered a $batch with {content_type or 'no content type'} instead of "
            "multipart/mixed: check DYNAMICS_URL and any proxy in between."
        )
    if multipart.is_cut_off(message):
        raise DynamicsProtocolError(
            "Dataverse's $batch answer is cut off (no closing boundary): the connection probably "
            "dropped; the operations' outcome is unknown, so read the listing back before retrying."
        )
    return [_response(multipart.read_http_part(part)) for part in multipart.http_parts(message)]


def _response(part: multipart.HttpPart) -> PartResponse:
    version, _, rest = part.start_line.partition(" ")
    status = rest[:3]
    if not (version.startswith("HTTP/") and status.isdigit()):
        raise DynamicsProtocolError(
            f"A $batch part does not start with an HTTP status line ({part.start_line[:60]!r}): "
            "Dataverse's answer is malformed; retry later."
        )
    return PartResponse(status=int(status), headers=part.headers, body=part.body, content_id=part.content_id)
