"""The emulator's ASGI app: Entra ID token endpoint, Dataverse Web API, portal page, admin API.

One port serves all, so DYNAMICS_AUTHORITY and DYNAMICS_URL can both point at it. State lives
in memory in one `Emulator` object and is only touched from the event loop (no locks needed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from mentor_pipeline.emulator import admin_api
from mentor_pipeline.emulator.batch import InnerRequest, run_batch, split_url
from mentor_pipeline.emulator.changetracking import ChangeTracking
from mentor_pipeline.emulator.clock import Clock
from mentor_pipeline.emulator.faults import FaultInjector
from mentor_pipeline.emulator.identity import Identity
from mentor_pipeline.emulator.limits import ServiceProtection
from mentor_pipeline.emulator.options import EmulatorOptions
from mentor_pipeline.emulator.portal import render
from mentor_pipeline.emulator.requestlog import RequestLog, kept_headers, loggable_body
from mentor_pipeline.emulator.store import ContactStore, seed_rows
from mentor_pipeline.emulator.webapi import Reply, WebApi, error_reply

API_PATH = "/api/data/v9.2/"
APPLICATION_USER_ID = "a1b2c3d4-0000-4000-8000-00000000a5e7"
log = logging.getLogger("mentor_pipeline.emulator")


class Emulator:
    def __init__(self, options: EmulatorOptions):
        self.options = options
        self.clock = Clock()
        self.identity = Identity(self.clock, options.tenant_id, options.client_id, options.client_secret,
                                 options.token_lifetime)
        self.limits = ServiceProtection(self.clock, options.request_limit, options.window_seconds,
                                        options.execution_time_limit, options.concurrency_limit)
        self.faults = FaultInjector(options.seed)
        self.store = ContactStore(self.clock)
        self.tracking = ChangeTracking(enabled=options.change_tracking)
        self.webapi = WebApi(self.store, options.max_page_size, self.tracking)
        self.log = RequestLog()
        self.portal_delay = options.portal_delay
        if options.state_file:
            with contextlib.suppress(FileNotFoundError):
                self.store.load(options.state_file)
        if options.seed_contacts and not self.store.by_id:
            self.seed(seed_rows(options.seed_contacts))

    def seed(self, rows: list[dict], replace: bool = False) -> int:
        """Admin seeding: contacts the portal already shows (no portal delay)."""
        if replace:
            self.store.clear()
        for r in rows:
            values = {"hlf_mentorid": r["mentor_id"], "fullname": r.get("full_name"),
                      "hlf_chaptername": r.get("chapter"), "hlf_websitelisted": r.get("listed", True)}
            existing = self.store.get_by_key(r["mentor_id"])
            if existing:
                self.store.update(existing, values, visible_since=float("-inf"))
            else:
                self.store.create(values, visible_since=float("-inf"))
        return len(rows)

    def save(self) -> None:
        if self.options.state_file and self.store.dirty:
            self.store.save(self.options.state_file)

    # -- token endpoint --------------------------------------------------------------------

    async def token(self, request: Request) -> Response:
        # application/x-www-form-urlencoded, parsed by hand: no python-multipart dependency.
        form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        origin = f"{request.url.scheme}://{request.url.netloc}"
        status, body = self.identity.issue(request.path_params["tenant"], form, origin)
        safe_form = {k: ("<redacted>" if k == "client_secret" else v) for k, v in form.items()}
        self.log.add(time=self.clock.wall(), kind="token", method="POST", path=request.url.path, query="",
                     headers=kept_headers(request.headers), body=safe_form, status=status,
                     client_id=form.get("client_id"), error_codes=body.get("error_codes"))
        # Entra ID answers token errors with no-store caching, like its successes.
        return JSONResponse(body, status, headers={"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"})

    # -- Web API ---------------------------------------------------------------------------

    async def api(self, request: Request) -> Response:
        raw_body = await request.body()
        path = request.url.path[len(API_PATH):]
        entry = self.log.add(time=self.clock.wall(), kind="api", method=request.method, path=request.url.path,
                             query=request.url.query, headers=kept_headers(request.headers),
                             body=loggable_body(request.headers.get("content-type", ""), raw_body)
                             if path != "$batch" else None,
                             status=None, client_id=None, batch=None)
        reply = await self._api(request, path, raw_body, entry)
        entry["status"] = reply.status
        return Response(reply.body, reply.status, headers=reply.headers)

    async def _api(self, request: Request, path: str, raw_body: bytes, entry: dict) -> Reply:
        user = self.identity.authenticate(request.headers.get("authorization"))
        if user is None:
            origin = f"{request.url.scheme}://{request.url.netloc}"
            return Reply(401, b"", {"WWW-Authenticate": f"Bearer authorization_uri={origin}/"
                                    f"{self.identity.tenant_id}/oauth2/authorize, resource_id={origin}/"})
        entry["client_id"] = user
        rejection = self.limits.admit(user)
        if rejection is not None:
            entry["throttled"] = rejection.code
            entry["retry_after"] = rejection.retry_after
            reply = error_reply(429, rejection.code, rejection.message)
            reply.headers["Retry-After"] = str(rejection.retry_after)
            return reply
        started = time.monotonic()
        try:
            return await self._serve(request, path, raw_body, entry)
        finally:
            self.limits.release(user, time.monotonic() - started)

    async def _serve(self, request: Request, path: str, raw_body: bytes, entry: dict) -> Reply:
        faults = self.faults
        if faults.faults.latency:
            await asyncio.sleep(faults.faults.latency)
        hang = faults.take_hang()
        if hang is not None:
            entry["fault"] = "timeout"
            await asyncio.sleep(hang)
        status = faults.take_error()
        if status is not None:
            entry["fault"] = f"http_{status}"
            return error_reply(status, "0x80040216", "An unexpected error occurred.")
        malformed = faults.take_malformed()
        origin = f"{request.url.scheme}://{request.url.netloc}"
        service_root = origin + API_PATH
        headers = {k.lower(): v for k, v in request.headers.items()}
        if path == "$batch" and request.method == "POST":
            reply = self._batch(headers, raw_body, service_root, entry)
        else:
            query = dict(request.query_params)
            reply = self.webapi.handle(request.method, path, query, headers, raw_body, service_root,
                                       APPLICATION_USER_ID)
        if malformed:
            entry["fault"] = f"malformed_{malformed}"
            reply = _malform(reply, malformed)
        return reply

    def _batch(self, headers: dict, body: bytes, service_root: str, entry: dict) -> Reply:
        def handle(inner: InnerRequest) -> Reply:
            path, query = split_url(inner.url, API_PATH)
            reply = self.webapi.handle(inner.method, path, query, inner.headers, inner.body, service_root,
                                       APPLICATION_USER_ID)
            self.log.add(time=self.clock.wall(), kind="api", method=inner.method, path=API_PATH + path,
                         query="&".join(f"{k}={v}" for k, v in query.items()), headers=kept_headers(inner.headers),
                         body=loggable_body(inner.headers.get("content-type", "application/json"), inner.body),
                         status=reply.status, client_id=entry["client_id"], batch=entry["seq"])
            return reply

        return run_batch(headers.get("content-type", ""), body, headers.get("prefer", ""), API_PATH, handle,
                         self.store.begin, self.store.commit, self.store.rollback)

    # -- portal ----------------------------------------------------------------------------

    async def portal(self, request: Request) -> Response:
        return HTMLResponse(render(self.store.portal_view(self.portal_delay), self.portal_delay))

    async def portal_json(self, request: Request) -> Response:
        return JSONResponse({"portal_delay": self.portal_delay,
                             "chapters": self.store.portal_view(self.portal_delay)})


def _malform(reply: Reply, kind: str) -> Reply:
    """Answers a real client can meet: a proxy's HTML page, a cut-off body, a broken page."""
    if kind == "html":
        return Reply(200, b"<!DOCTYPE html><html><head><title>Sign in to your account</title></head>"
                          b"<body><p>Service temporarily redirected.</p></body></html>",
                     {"Content-Type": "text/html; charset=utf-8"})
    if kind == "truncated_json":
        return Reply(reply.status, reply.body[: max(1, len(reply.body) // 2)], dict(reply.headers))
    import json

    try:
        body = json.loads(reply.body)
    except ValueError:
        return reply
    if kind == "missing_value" and isinstance(body, dict):
        body.pop("value", None)
    if kind == "foreign_next_link" and isinstance(body, dict):
        body["@odata.nextLink"] = "https://attacker.example/api/data/v9.2/contacts?$skiptoken=x"
    return Reply(reply.status, json.dumps(body).encode(), dict(reply.headers))


def create_app(options: EmulatorOptions | None = None) -> Starlette:
    emulator = Emulator(options or EmulatorOptions())

    @contextlib.asynccontextmanager
    async def lifespan(app):
        saver = asyncio.create_task(_save_periodically(emulator)) if emulator.options.state_file else None
        try:
            yield
        finally:
            if saver:
                saver.cancel()
            emulator.save()

    methods = ["GET", "POST", "PATCH", "PUT", "DELETE"]
    routes = [
        Route("/", emulator.portal),
        Route("/portal.json", emulator.portal_json),
        Route("/{tenant}/oauth2/v2.0/token", emulator.token, methods=["POST"]),
        Route(API_PATH + "{rest:path}", emulator.api, methods=methods),
        *admin_api.routes(emulator),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.emulator = emulator
    return app


async def _save_periodically(emulator: Emulator) -> None:
    while True:
        await asyncio.sleep(2)
        emulator.save()
