"""`$batch` as Dataverse runs it (learn.microsoft.com, "Execute batch operations using the Web API").

- Operations run in order; responses come back in the same order.
- Change sets are atomic: if one operation fails, the change set rolls back and its single
  error response stands for it. GET is not allowed inside a change set.
- Without `Prefer: odata.continue-on-error` the batch stops at the first failure and answers
  400 with the responses so far; with it, the batch answers 200 and every part its own status.
- At most 1000 operations per batch.

Parsing is the standard library's MIME parser, through the helpers the client decodes answers
with (`mentor_pipeline.dynamics.multipart`); encoding is separate on each side, and the client's
codec is pinned to Microsoft's documented examples (tests/dynamics/test_batch_codec.py).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from mentor_pipeline.dynamics import multipart
from mentor_pipeline.emulator.webapi import QUERY_ERROR, Reply, error_reply

MAX_OPERATIONS = 1000
# Dataverse's code for a batch over the limit is not documented; this one is a stand-in.
TOO_MANY_CODE = "0x8006088a"
REASONS = {200: "OK", 201: "Created", 204: "No Content", 304: "Not Modified", 400: "Bad Request",
           401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
           412: "Precondition Failed", 429: "Too Many Requests", 500: "Internal Server Error",
           503: "Service Unavailable"}


@dataclass
class InnerRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    content_id: str | None


class BatchError(ValueError):
    pass


Handler = Callable[[InnerRequest], Reply]


def run_batch(content_type: str, body: bytes, prefer: str, api_path: str, handle: Handler,
              begin: Callable[[], None], commit: Callable[[], None], rollback: Callable[[], None]) -> Reply:
    try:
        items = parse_batch(content_type, body)
    except BatchError as exc:
        return error_reply(400, QUERY_ERROR, str(exc))
    count = sum(len(i) if isinstance(i, list) else 1 for i in items)
    if count > MAX_OPERATIONS:
        return error_reply(400, TOO_MANY_CODE,
                           f"The number of requests in a batch ({count}) exceeds the maximum of {MAX_OPERATIONS}.")
    continue_on_error = "odata.continue-on-error" in prefer
    out: list[object] = []  # Reply, or list[(content_id, Reply)] for a change set
    failed = False
    for item in items:
        if isinstance(item, list):
            if any(r.method == "GET" for r in item):
                return error_reply(400, QUERY_ERROR, "GET requests are not allowed within change sets.")
            begin()
            done: list[tuple[str | None, Reply]] = []
            entity_ids: dict[str, str] = {}
            for request in item:
                request.url = _resolve_reference(request.url, entity_ids)
                reply = handle(request)
                if reply.status >= 400:
                    rollback()
                    done = [(request.content_id, reply)]
                    failed = True
                    break
                done.append((request.content_id, reply))
                if request.content_id and "OData-EntityId" in reply.headers:
                    entity_ids[request.content_id] = reply.headers["OData-EntityId"]
            else:
                commit()
            out.append(done)
        else:
            reply = handle(item)
            out.append(reply)
            failed = failed or reply.status >= 400
        if failed and not continue_on_error:
            return encode_response(out, 400)
        failed = False
    return encode_response(out, 200)


def parse_batch(content_type: str, body: bytes) -> list[InnerRequest | list[InnerRequest]]:
    message = multipart.parse_multipart(content_type, body)
    if not multipart.has_boundary(message):
        raise BatchError("The $batch request must have Content-Type multipart/mixed with a boundary.")
    if not message.is_multipart():
        raise BatchError("The $batch request body is not a multipart message.")
    items: list[InnerRequest | list[InnerRequest]] = []
    for part in message.get_payload():
        if part.is_multipart():
            items.append([_inner(p) for p in part.get_payload()])
        else:
            items.append(_inner(part))
    return items


def _inner(part) -> InnerRequest:
    if part.get_content_type() != "application/http":
        raise BatchError(f"A $batch part has Content-Type {part.get_content_type()}, expected application/http.")
    http = multipart.read_http_part(part)
    request_line = re.fullmatch(r"([A-Z]+) (\S+) HTTP/1\.1", http.start_line)
    if request_line is None:
        raise BatchError(f"A $batch part does not start with a request line: {http.start_line[:80]!r}")
    return InnerRequest(request_line.group(1), request_line.group(2), http.headers, http.body, http.content_id)


def split_url(url: str, api_path: str) -> tuple[str, dict[str, str]]:
    """Absolute URL, absolute path or path relative to the service root -> (relative path, query)."""
    parts = urlsplit(url)
    path = parts.path
    if path.startswith(api_path):
        path = path[len(api_path):]
    elif path.startswith("/"):
        path = path.lstrip("/")
    return path, dict(parse_qsl(parts.query, keep_blank_values=True))


def _resolve_reference(url: str, entity_ids: dict[str, str]) -> str:
    match = re.match(r"\$(\w+)(.*)", url)
    if match and match.group(1) in entity_ids:
        return entity_ids[match.group(1)] + match.group(2)
    return url


def encode_response(items: list[object], status: int) -> Reply:
    boundary = f"batchresponse_{uuid.uuid4()}"
    lines: list[str] = []
    for item in items:
        lines.append(f"--{boundary}")
        if isinstance(item, list):
            inner = f"changesetresponse_{uuid.uuid4()}"
            lines += [f"Content-Type: multipart/mixed; boundary={inner}", ""]
            for content_id, reply in item:
                lines.append(f"--{inner}")
                lines += _part(reply, content_id)
            lines.append(f"--{inner}--")
        else:
            lines += _part(item, None)
    lines += [f"--{boundary}--", ""]
    return Reply(status, "\r\n".join(lines).encode(),
                 {"Content-Type": f"multipart/mixed; boundary={boundary}", "OData-Version": "4.0"})


def _part(reply: Reply, content_id: str | None) -> list[str]:
    lines = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    if content_id:
        lines.append(f"Content-ID: {content_id}")
    lines += ["", f"HTTP/1.1 {reply.status} {REASONS.get(reply.status, '')}".rstrip()]
    lines += [f"{name}: {value}" for name, value in reply.headers.items()]
    lines += ["", reply.body.decode(), ""]
    return lines
