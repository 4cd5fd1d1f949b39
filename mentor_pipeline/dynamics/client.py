"""The Dataverse Web API client the pipeline uses.

Synchronous for the caller; `apply_updates` keeps up to `max_in_flight` `$batch` requests in
flight on worker threads sharing one httpx connection pool.

Shaped the way httpx shapes clients: the client keeps Dataverse's semantics (the requests, their
answers, `$batch` chunking and the retries of single parts inside a `$batch`); what every request
needs sits in httpx's own layers:
- the retries (429 Retry-After held by the whole client, 5xx/timeouts with backoff) are a
  transport wrapper, mentor_pipeline/dynamics/transport.py;
- the bearer token and the one refresh after a 401 are an `httpx.Auth`,
  mentor_pipeline/dynamics/auth.py. A second 401 is an auth error here.
Auth errors always propagate: the pipeline stops and alerts instead of failing every mentor.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from urllib.parse import quote, urlsplit

import httpx

from mentor_pipeline.dynamics.auth import BearerTokenAuth, TokenProvider
from mentor_pipeline.dynamics.batch import BatchOperation, decode_batch_response, encode_batch
from mentor_pipeline.dynamics import delta
from mentor_pipeline.dynamics.errors import (
    ChangeTrackingOff,
    DeltaTokenExpired,
    DynamicsAuthError,
    DynamicsError,
    DynamicsProtocolError,
    DynamicsRequestError,
    DynamicsUnavailable,
)
from mentor_pipeline.dynamics.results import ClientStats, ListingUpdate, UpdateOutcome, UpdateResult, unavailable_code
from mentor_pipeline.dynamics.settings import DynamicsSettings
from mentor_pipeline.dynamics.throttle import HoldListener, SharedThrottle
from mentor_pipeline.dynamics.transport import WHAT, RetryPolicy, RetryTransport, rate_limit_waits, retry_after
from mentor_pipeline.redaction import redact, redact_url

logger = logging.getLogger("mentor_pipeline.dynamics")

MAX_PAGE_SIZE = 5000  # Dataverse's cap on odata.maxpagesize
MAX_BATCH_SIZE = 1000  # Dataverse's cap on requests in one $batch
ODATA_HEADERS = {"Accept": "application/json", "OData-MaxVersion": "4.0", "OData-Version": "4.0"}


class DataverseClient:
    def __init__(
        self,
        settings: DynamicsSettings,
        *,
        max_in_flight: int = 4,
        batch_size: int = 100,
        timeout: float = 30.0,
        max_retries: int = 4,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        max_rate_limit_waits: int = 100,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"batch_size must be 1..{MAX_BATCH_SIZE}")
        self.settings = settings
        self.max_in_flight = max(1, max_in_flight)
        self.batch_size = batch_size
        self.stats = ClientStats()
        policy = RetryPolicy(max_retries, backoff_base, backoff_max, max_rate_limit_waits)
        self._throttle = SharedThrottle(sleep, clock, logger)
        # Entra ID is another service: its 429s hold only the token request, never Dataverse's.
        self._token_http = httpx.Client(timeout=timeout, transport=RetryTransport(
            httpx.HTTPTransport(), policy, self.stats, sleep=sleep, service="Entra ID", counter="token_requests"))
        self._tokens = TokenProvider(settings, self._token_http, clock=clock)
        self._retries = RetryTransport(
            httpx.HTTPTransport(limits=httpx.Limits(max_connections=self.max_in_flight + 2)), policy, self.stats,
            sleep=sleep, throttle=self._throttle)
        self._http = httpx.Client(timeout=timeout, headers=ODATA_HEADERS, transport=self._retries,
                                  auth=BearerTokenAuth(self._tokens))

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> DataverseClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()
        self._token_http.close()

    def __repr__(self) -> str:
        return f"DataverseClient(url={redact_url(self.settings.org_url)!r}, client_id={self.settings.client_id!r})"

    # -- public operations -------------------------------------------------------------------

    def whoami(self) -> dict:
        """Health check: signs in and asks Dataverse who we are."""
        response, _ = self._request("GET", self.settings.api_base + "WhoAmI", what="WhoAmI")
        body = self._json_body(response, "WhoAmI")
        if response.status_code != 200:
            raise self._request_error(response, body, "WhoAmI")
        if "UserId" not in body:
            raise DynamicsProtocolError(
                "Dataverse answered WhoAmI without a UserId: check DYNAMICS_URL is the org URL."
            )
        return body

    def iter_listings(self, *, page_size: int = MAX_PAGE_SIZE) -> Iterator[list[dict]]:
        """Yield pages of {"mentor_id", "listed", "chapter"}; one raw page in memory at a time."""
        s = self.settings
        select = ",".join([s.key_attribute, s.listed_attribute, s.chapter_attribute])
        query = f"$select={quote(select, safe=',')}&$filter={quote(f'{s.key_attribute} ne null')}"
        url: str | None = f"{s.api_base}{s.entity_set}?{query}"
        prefer = {"Prefer": f"odata.maxpagesize={min(page_size, MAX_PAGE_SIZE)}"}
        while url:
            response, _ = self._request("GET", url, headers=prefer, what="the contact listing")
            body = self._json_body(response, "the contact listing")
            if response.status_code != 200:
                raise self._request_error(response, body, "the contact listing")
            rows = body.get("value")
            if not isinstance(rows, list):
                raise DynamicsProtocolError(
                    "Dataverse answered the contact listing without a 'value' array: the page is "
                    "malformed; retry the read later."
                )
            url = self._next_link(body)
            yield [self._listing(row) for row in rows]

    def iter_changes(self, delta_token: str | None = None, *,
                     page_size: int = MAX_PAGE_SIZE) -> Iterator[delta.ChangePage]:
        """Change tracking: without a token every contact (and a token on the last page), with
        one what changed since (current values) and what was deleted. Raises ChangeTrackingOff
        when the table does not track changes, DeltaTokenExpired when the token is too old."""
        s = self.settings
        select = ",".join([s.key_attribute, s.listed_attribute, s.chapter_attribute])
        query = f"$select={quote(select, safe=',')}"
        if delta_token is not None:
            query += f"&$deltatoken={quote(delta_token, safe='')}"
        url: str | None = f"{s.api_base}{s.entity_set}?{query}"
        prefer = {"Prefer": f"odata.track-changes,odata.maxpagesize={min(page_size, MAX_PAGE_SIZE)}"}
        what = "the contact changes"
        while url:
            response, _ = self._request("GET", url, headers=prefer, what=what)
            body = self._json_body(response, what)
            if response.status_code != 200:
                error = self._request_error(response, body, what)
                refused = delta.refused_as(error.code or "", str(error))
                if refused == "off":
                    raise ChangeTrackingOff(
                        f"Change tracking is off for the {s.entity_set} table in Dataverse ({error.code}): in Power "
                        "Apps (make.powerapps.com) open Tables > Contact > Properties > Advanced options, tick "
                        "'Track changes' and save.", status=response.status_code, code=error.code)
                if refused == "expired":
                    raise DeltaTokenExpired(
                        f"Dataverse no longer has the changes since the stored delta token ({error.code}): a full "
                        "read starts over.", status=response.status_code, code=error.code)
                raise error
            rows = body.get("value")
            if not isinstance(rows, list):
                raise DynamicsProtocolError(f"Dataverse answered {what} without a 'value' array: retry later.")
            page = delta.ChangePage()
            for row in rows:
                if isinstance(row, dict) and delta.is_deleted(row):
                    page.deleted.append(str(row.get("id")))
                else:
                    page.changed.append(self._change(row))
            url = self._next_link(body)
            if url is None:
                link = body.get("@odata.deltaLink")
                page.delta_token = delta.token_of(link) if isinstance(link, str) else None
                if page.delta_token is None:
                    raise DynamicsProtocolError(
                        f"Dataverse answered {what} without an @odata.deltaLink on the last page: is "
                        "'Prefer: odata.track-changes' stripped by a proxy?")
            yield page

    def set_listed(self, mentor_id: str, listed: bool, chapter: str | None = None) -> UpdateResult:
        """Update one contact, update-only (If-Match: *): a missing contact is NOT_FOUND."""
        update = ListingUpdate(mentor_id, listed, chapter)
        self.stats.add(operations=1)
        try:
            response, waits = self._request(
                "PATCH",
                self.settings.org_url + self._key_path(mentor_id),
                headers={"If-Match": "*", "Content-Type": "application/json"},
                content=json.dumps(self._patch_body(update)).encode(),
                what=f"the update of mentor {mentor_id}",
            )
        except DynamicsUnavailable as exc:
            return UpdateResult(mentor_id, UpdateOutcome.FAILED, unavailable_code(exc.status), str(exc), exc.rate_limit_waits)
        return self._result(mentor_id, response.status_code, response.content, waits)

    def apply_updates(
        self, updates: Sequence[ListingUpdate], *, batch_size: int | None = None
    ) -> list[UpdateResult]:
        """Send updates in `$batch` requests (continue-on-error); results in input order."""
        size = min(batch_size or self.batch_size, MAX_BATCH_SIZE)
        chunks = [list(updates[i : i + size]) for i in range(0, len(updates), size)]
        results: list[UpdateResult | None] = [None] * len(updates)
        with ThreadPoolExecutor(max_workers=self.max_in_flight, thread_name_prefix="dataverse") as pool:
            futures = {pool.submit(self._apply_chunk, chunk): n * size for n, chunk in enumerate(chunks)}
            done, not_done = wait(futures, return_when=FIRST_EXCEPTION)
            for future in not_done:
                future.cancel()
            for future in futures:  # re-raises the first error (auth, protocol) to the caller
                if future.cancelled():
                    continue
                for offset, result in enumerate(future.result()):
                    results[futures[future] + offset] = result
        return results  # type: ignore[return-value]

    # -- batches -----------------------------------------------------------------------------

    def _apply_chunk(self, chunk: list[ListingUpdate]) -> list[UpdateResult]:
        results: dict[int, UpdateResult] = {}
        waits = [0] * len(chunk)
        failures = [0] * len(chunk)
        pending = list(range(len(chunk)))
        url = self.settings.api_base + "$batch"
        while pending:
            ops = [
                BatchOperation("PATCH", self._api_path() + self._key_path(chunk[i].mentor_id, relative=True),
                               {"If-Match": "*"}, self._patch_body(chunk[i]))
                for i in pending
            ]
            content_type, body = encode_batch(ops)
            self.stats.add(batches=1, operations=len(ops))
            try:
                response, batch_waits = self._request(
                    "POST", url,
                    headers={"Content-Type": content_type, "Prefer": "odata.continue-on-error"},
                    content=body, what=f"a $batch of {len(ops)} updates",
                )
            except DynamicsUnavailable as exc:
                for i in pending:
                    results[i] = UpdateResult(chunk[i].mentor_id, UpdateOutcome.FAILED, unavailable_code(exc.status),
                                              str(exc), waits[i] + exc.rate_limit_waits)
                break
            for i in pending:
                waits[i] += batch_waits
            if response.status_code != 200:
                # The whole batch was refused (malformed, too large): each update failed with it.
                for i in pending:
                    results[i] = self._result(chunk[i].mentor_id, response.status_code, response.content, waits[i],
                                              force_failed=True)
                break
            parts = decode_batch_response(response.headers.get("content-type", ""), response.content)
            if len(parts) != len(pending):
                raise DynamicsProtocolError(
                    f"Dataverse answered a $batch of {len(pending)} updates with {len(parts)} responses: "
                    "the outcome is unknown; read the listing back before retrying."
                )
            again: list[int] = []
            delay = 0.0
            throttled = False
            for i, part in zip(pending, parts):
                if part.status == 401:
                    raise DynamicsAuthError(
                        "Dataverse refused an operation inside a $batch as unauthenticated (401): check the "
                        "app registration is an application user of the environment.", status=401)
                if part.status == 429:
                    waits[i] += 1
                    throttled = True
                    again.append(i)
                    delay = max(delay, retry_after(part.headers) or self._retries.policy.backoff_delay(waits[i]))
                elif part.status >= 500 and failures[i] < self._retries.policy.max_retries:
                    failures[i] += 1
                    again.append(i)
                    delay = max(delay, self._retries.policy.backoff_delay(failures[i]))
                else:
                    results[i] = self._result(chunk[i].mentor_id, part.status, part.body, waits[i])
            if again:
                if throttled:
                    # The next send of any worker waits for this (in the retry transport).
                    self.stats.add(rate_limit_waits=1, rate_limit_wait_seconds=delay)
                    self._throttle.hold(delay, f"updates inside a $batch of {len(ops)}")
                else:
                    self.stats.add(retries=1)
                    self._retries.pause(delay, f"a $batch of {len(ops)} updates", "HTTP 5xx inside the batch")
            pending = again
        return [results[i] for i in range(len(chunk))]

    # -- HTTP (auth and retries: the client's httpx layers) -------------------------------------

    def _request(self, method: str, url: str, *, headers: dict | None = None, content: bytes | None = None,
                 what: str) -> tuple[httpx.Response, int]:
        """Send one Web API request; returns the final response and the 429 waits it took."""
        response = self._http.request(method, url, headers=headers, content=content, extensions={WHAT: what})
        if response.status_code == 401:
            raise DynamicsAuthError(
                f"Dataverse refused a freshly issued token for {what} (HTTP 401): check the app "
                "registration is an application user of this environment, with a security role.",
                status=401,
            )
        return response, rate_limit_waits(response)

    def on_throttle(self, listener: HoldListener) -> Callable[[], None]:
        """Hear of every 429 hold of this client: (Retry-After, seconds it adds to the shared
        wait, what was throttled). Returns the function that stops listening."""
        return self._throttle.listen(listener)

    @property
    def budget(self) -> str:
        """The service-protection budget this client spends: Dataverse counts per application
        user, so the org and the client id (neither is a secret)."""
        return f"{self.settings.org_url} {self.settings.client_id}"

    def hold_requests(self, seconds: float, what: str) -> None:
        """Send nothing for `seconds`: a 429 another process received for the same budget. The
        client's hold listeners are not told (the hold is not news to whoever recorded it)."""
        self._throttle.hold(seconds, what, notify=False)

    # -- mapping -----------------------------------------------------------------------------

    def _api_path(self) -> str:
        return urlsplit(self.settings.api_base).path

    def _key_path(self, mentor_id: str, relative: bool = False) -> str:
        literal = mentor_id.replace("'", "''")  # OData string literal escaping
        key = f"{self.settings.entity_set}({self.settings.key_attribute}='{quote(literal, safe=chr(39))}')"
        return key if relative else self._api_path() + key

    def _patch_body(self, update: ListingUpdate) -> dict:
        # Changed columns only; the alternate key stays in the URL, never in the body. A listing
        # carries its chapter (the page groups by it); an unlisting leaves the chapter alone.
        body: dict = {self.settings.listed_attribute: bool(update.listed)}
        if update.listed and update.chapter is not None:
            body[self.settings.chapter_attribute] = update.chapter
        return body

    def _listing(self, row: object) -> dict:
        s = self.settings
        if not isinstance(row, dict) or not isinstance(row.get(s.key_attribute), str):
            raise DynamicsProtocolError(
                f"A contact row in Dataverse's listing lacks {s.key_attribute}: check "
                "DYNAMICS_KEY_ATTRIBUTE matches the alternate key's column."
            )
        listed = row.get(s.listed_attribute)
        if listed is not None and not isinstance(listed, bool):
            raise DynamicsProtocolError(
                f"{s.listed_attribute} is not a yes/no column in Dataverse's answer: check "
                "DYNAMICS_LISTED_ATTRIBUTE."
            )
        chapter = row.get(s.chapter_attribute)
        return {"mentor_id": row[s.key_attribute], "listed": bool(listed), "chapter": chapter}

    def _change(self, row: object) -> dict:
        """A changed row of a delta read; contacts that are not mentors' have no key (None)."""
        s = self.settings
        if not isinstance(row, dict) or not isinstance(row.get("contactid"), str):
            raise DynamicsProtocolError("A changed contact in Dataverse's delta lacks its contactid: retry later.")
        key = row.get(s.key_attribute)
        if key is None:
            return {"contactid": row["contactid"], "mentor_id": None, "listed": False, "chapter": None}
        return {"contactid": row["contactid"], **self._listing(row)}

    def _next_link(self, body: dict) -> str | None:
        link = body.get("@odata.nextLink")
        if link is None:
            return None
        # Follow it unchanged, but only to our own org: the bearer token goes with it.
        if not isinstance(link, str) or not link.startswith(self.settings.api_base):
            raise DynamicsProtocolError(
                "Dataverse's listing page has an @odata.nextLink that is not a link into "
                f"{redact_url(self.settings.api_base)}: refusing to follow it; check DYNAMICS_URL."
            )
        return link

    def _json_body(self, response: httpx.Response, what: str) -> dict:
        kind = response.headers.get("content-type", "no content type")
        if "json" not in kind.lower():
            raise DynamicsProtocolError(
                f"Dataverse answered {what} with HTTP {response.status_code} and {kind.split(';')[0]} instead "
                "of JSON (an error page from a proxy or sign-in?): check DYNAMICS_URL."
            )
        try:
            body = json.loads(response.content)
        except ValueError as exc:
            raise DynamicsProtocolError(
                f"Dataverse's answer to {what} is not valid JSON ({exc.msg} at byte {exc.pos} of "
                f"{len(response.content)}; cut off?): retry later."
            ) from None
        if not isinstance(body, dict):
            raise DynamicsProtocolError(f"Dataverse's answer to {what} is JSON but not an object: retry later.")
        return body

    def _request_error(self, response: httpx.Response, body: dict, what: str) -> DynamicsRequestError:
        code, message = _error_of(body)
        return DynamicsRequestError(
            f"Dataverse refused {what} (HTTP {response.status_code}, {code}): {message} "
            "Check the DYNAMICS_* entity and column settings.",
            status=response.status_code, code=code,
        )

    def _result(self, mentor_id: str, status: int, body: bytes, waits: int,
                force_failed: bool = False) -> UpdateResult:
        if status in (200, 204) and not force_failed:
            return UpdateResult(mentor_id, UpdateOutcome.APPLIED, rate_limit_waits=waits)
        try:
            code, message = _error_of(json.loads(body))
        except ValueError:
            code, message = f"HTTP {status}", f"HTTP {status} without a JSON error body"
        outcome = UpdateOutcome.NOT_FOUND if status == 404 and not force_failed else UpdateOutcome.FAILED
        return UpdateResult(mentor_id, outcome, code or f"HTTP {status}", message, waits)


def _error_of(body: object) -> tuple[str, str]:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return "unknown", "no error details in the answer"
    # Dataverse's message may quote a URL; it ends up in sync_queue.last_error and metadata.
    return str(error.get("code") or "unknown"), redact(str(error.get("message") or "no message"))


__all__ = ["DataverseClient", "DynamicsError"]
