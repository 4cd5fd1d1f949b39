"""`EmulatorAdmin`: the emulator's admin API from Python (tests, the demo, the e2e suite)."""

from __future__ import annotations

import httpx


class EmulatorAdmin:
    def __init__(self, url: str, *, timeout: float = 30.0):
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> EmulatorAdmin:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _call(self, method: str, path: str, json: dict | None = None, params: dict | None = None):
        response = self._http.request(method, f"/_admin/{path}", json=json, params=params)
        response.raise_for_status()
        return response.json()

    # contacts
    def seed_contacts(self, contacts: list[dict], *, replace: bool = False) -> dict:
        """contacts: [{"mentor_id", "full_name", "chapter", "listed"}]; shown on the portal at once."""
        return self._call("POST", "contacts", {"contacts": contacts, "replace": replace})

    def seed(self, count: int, *, listed: bool = True, replace: bool = False) -> dict:
        """`count` generated contacts m000001... (like --seed-contacts)."""
        return self._call("POST", "seed", {"count": count, "listed": listed, "replace": replace})

    def contacts(self) -> list[dict]:
        return self._call("GET", "contacts")

    def contact(self, mentor_id: str) -> dict | None:
        return next((c for c in self.contacts() if c["mentor_id"] == mentor_id), None)

    def delete_contact(self, mentor_id: str) -> None:
        self._http.delete(f"/_admin/contacts/{mentor_id}")

    def edit_contact(self, mentor_id: str, **values) -> dict:
        """Change a contact as a CRM administrator or a flow would: listed, chapter, full_name."""
        return self._call("PATCH", f"contacts/{mentor_id}", values)

    # change tracking
    def set_change_tracking(self, enabled: bool) -> dict:
        """The contact table's Track changes setting."""
        return self._call("POST", "change-tracking", {"enabled": enabled})

    def expire_delta_tokens(self) -> dict:
        """Every delta token issued so far is past retention (ExpireChangeTrackingInDays)."""
        return self._call("POST", "change-tracking", {"expire_tokens": True})

    def portal(self) -> dict[str, list[dict]]:
        """Chapter -> mentors the public page shows now (after the portal delay)."""
        response = self._http.get("/portal.json")
        response.raise_for_status()
        return response.json()["chapters"]

    # request log
    def requests(self, *, since: int = 0, kind: str | None = "api", include_batch_parts: bool = True) -> list[dict]:
        entries = self._call("GET", "requests", params={"since": since})
        if kind:
            entries = [e for e in entries if e.get("kind") == kind]
        if not include_batch_parts:
            entries = [e for e in entries if not e.get("batch")]
        return entries

    def token_requests(self) -> list[dict]:
        return self.requests(kind="token")

    def clear_requests(self) -> None:
        self._call("DELETE", "requests")

    # faults, limits, identity, clock
    def set_faults(self, **faults) -> dict:
        return self._call("POST", "faults", faults)

    def clear_faults(self) -> dict:
        return self._call("DELETE", "faults")

    def configure(self, **settings) -> dict:
        """request_limit, window_seconds, execution_time_limit, concurrency_limit, token_lifetime,
        portal_delay, max_page_size."""
        return self._call("POST", "config", settings)

    def rotate_secret(self, secret: str, *, keep_old: bool = False) -> dict:
        return self._call("POST", "secrets/rotate", {"secret": secret, "keep_old": keep_old})

    def expire_secrets(self) -> dict:
        return self._call("POST", "secrets/expire")

    def revoke_tokens(self) -> dict:
        return self._call("POST", "tokens/revoke")

    def advance_clock(self, seconds: float) -> dict:
        return self._call("POST", "clock", {"advance": seconds})

    def state(self) -> dict:
        return self._call("GET", "state")

    def reset(self) -> dict:
        return self._call("POST", "reset")
