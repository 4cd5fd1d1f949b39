"""Admin endpoints under /_admin/ (tests and demos only; loopback, no auth).

Seed contacts, edit or delete one as a CRM administrator would (a new row version, seen by
change tracking), switch the table's change tracking and expire delta tokens, read and clear the
request log, set faults and limits, rotate or expire the client secret, revoke tokens and move
the emulator's clock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from mentor_pipeline.emulator.store import CHAPTER, KEY, LISTED, seed_rows

if TYPE_CHECKING:
    from mentor_pipeline.emulator.app import Emulator


def routes(em: Emulator) -> list[Route]:
    async def body(request: Request) -> dict:
        raw = await request.body()
        return (await request.json()) if raw.strip() else {}

    async def state(request: Request):
        o = em.options
        return JSONResponse({
            "contacts": len(em.store.by_id),
            "tenant_id": em.identity.tenant_id,
            "client_id": em.identity.client_id,
            "secrets": [{"expired": s.expired} for s in em.identity.secrets],
            "tokens_issued": len(em.identity.tokens),
            "limits": {"request_limit": em.limits.request_limit, "window_seconds": em.limits.window_seconds,
                       "execution_time_limit": em.limits.execution_time_limit,
                       "concurrency_limit": em.limits.concurrency_limit, "in_flight": em.limits.in_flight,
                       "rejections": em.limits.rejections},
            "token_lifetime": em.identity.token_lifetime,
            "portal_delay": em.portal_delay,
            "max_page_size": em.webapi.max_page_size,
            "change_tracking": em.tracking.enabled,
            "faults": em.faults.faults.as_dict(),
            "clock_offset": em.clock.offset,
            "state_file": o.state_file,
        })

    async def contacts(request: Request):
        if request.method == "GET":
            view = em.store.portal_view(em.portal_delay)
            shown = {m["mentor_id"] for mentors in view.values() for m in mentors}
            return JSONResponse([
                {"mentor_id": c.attrs.get(KEY), "full_name": c.attrs.get("fullname"),
                 "chapter": c.attrs.get("hlf_chaptername"), "listed": c.attrs.get("hlf_websitelisted"),
                 "portal_listed": c.attrs.get(KEY) in shown, "contactid": c.attrs["contactid"],
                 "versionnumber": c.attrs["versionnumber"]}
                for c in em.store.by_id.values()
            ])
        data = await body(request)
        count = em.seed(data.get("contacts", []), replace=bool(data.get("replace")))
        return JSONResponse({"seeded": count, "contacts": len(em.store.by_id)})

    async def one_contact(request: Request):
        contact = em.store.get_by_key(request.path_params["mentor_id"])
        if contact is None:
            return JSONResponse({"deleted": 0, "updated": 0}, 404)
        if request.method == "DELETE":
            em.store.delete(contact)
            return JSONResponse({"deleted": 1})
        # An edit in the model-driven app or by a flow: any column, a new row version.
        data = await body(request)
        names = {"listed": LISTED, "chapter": CHAPTER, "full_name": "fullname"}
        unknown = set(data) - set(names)
        if unknown:
            return JSONResponse({"error": f"unknown column(s) {sorted(unknown)}; known: {sorted(names)}"}, 400)
        em.store.update(contact, {names[k]: v for k, v in data.items()})
        return JSONResponse({"updated": 1, "versionnumber": contact.attrs["versionnumber"]})

    async def change_tracking(request: Request):
        data = await body(request)
        if "enabled" in data:
            em.tracking.enabled = bool(data["enabled"])
        if data.get("expire_tokens"):
            em.tracking.expire_all(em.store.bump_version())
        return JSONResponse({"enabled": em.tracking.enabled, "expired_below": em.tracking.expired_below})

    async def seed(request: Request):
        data = await body(request)
        rows = seed_rows(int(data.get("count", 0)))
        for r in rows:
            r["listed"] = bool(data.get("listed", True))
        return JSONResponse({"seeded": em.seed(rows, replace=bool(data.get("replace"))),
                             "contacts": len(em.store.by_id)})

    async def requests(request: Request):
        if request.method == "DELETE":
            em.log.clear()
            return JSONResponse({"cleared": True})
        return JSONResponse(em.log.entries(int(request.query_params.get("since", 0))))

    async def faults(request: Request):
        if request.method == "DELETE":
            em.faults.reset()
        elif request.method == "POST":
            try:
                em.faults.update(await body(request))
            except ValueError as exc:
                return JSONResponse({"error": str(exc)}, 400)
        return JSONResponse(em.faults.faults.as_dict())

    async def config(request: Request):
        data = await body(request)
        limits = {"request_limit", "window_seconds", "execution_time_limit", "concurrency_limit"}
        known = limits | {"token_lifetime", "portal_delay", "max_page_size"}
        unknown = set(data) - known
        if unknown:
            return JSONResponse({"error": f"unknown setting(s) {sorted(unknown)}; known: {sorted(known)}"}, 400)
        for name in limits & set(data):
            setattr(em.limits, name, data[name])
        if "token_lifetime" in data:
            em.identity.token_lifetime = int(data["token_lifetime"])
        if "portal_delay" in data:
            em.portal_delay = float(data["portal_delay"])
        if "max_page_size" in data:
            em.webapi.max_page_size = int(data["max_page_size"])
        return await state(request)

    async def rotate(request: Request):
        data = await body(request)
        em.identity.rotate(data["secret"], keep_old=bool(data.get("keep_old")))
        return JSONResponse({"secrets": len(em.identity.secrets)})

    async def expire(request: Request):
        em.identity.expire_secrets()
        return JSONResponse({"expired": len(em.identity.secrets)})

    async def revoke(request: Request):
        em.identity.revoke_tokens()
        return JSONResponse({"revoked": True})

    async def clock(request: Request):
        data = await body(request)
        em.clock.advance(float(data.get("advance", 0)))
        return JSONResponse({"offset": em.clock.offset})

    async def reset(request: Request):
        em.store.clear()
        em.log.clear()
        em.faults.reset()
        em.limits.reset()
        return JSONResponse({"reset": True})

    return [
        Route("/_admin/state", state),
        Route("/_admin/contacts", contacts, methods=["GET", "POST"]),
        Route("/_admin/contacts/{mentor_id}", one_contact, methods=["PATCH", "DELETE"]),
        Route("/_admin/change-tracking", change_tracking, methods=["POST"]),
        Route("/_admin/seed", seed, methods=["POST"]),
        Route("/_admin/requests", requests, methods=["GET", "DELETE"]),
        Route("/_admin/faults", faults, methods=["GET", "POST", "DELETE"]),
        Route("/_admin/config", config, methods=["POST"]),
        Route("/_admin/secrets/rotate", rotate, methods=["POST"]),
        Route("/_admin/secrets/expire", expire, methods=["POST"]),
        Route("/_admin/tokens/revoke", revoke, methods=["POST"]),
        Route("/_admin/clock", clock, methods=["POST"]),
        Route("/_admin/reset", reset, methods=["POST"]),
    ]
