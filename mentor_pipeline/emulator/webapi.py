"""Dataverse Web API operations on `contacts`, answered as learn.microsoft.com documents them.

`WebApi.handle` takes one request (method, path under the service root, query, headers, body)
and returns a `Reply`. The HTTP app and the `$batch` handler both call it, so an operation
inside a batch behaves exactly like the same request sent alone.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

from mentor_pipeline.emulator.changetracking import EXPIRED, NOT_TRACKED, ChangeTracking
from mentor_pipeline.emulator.store import BOOLEAN, COLUMNS, KEY, READ_ONLY, WRITABLE, Contact, ContactStore

ENTITY_SET = "contacts"
ENTITY = "contact"
JSON_TYPE = "application/json; odata.metadata=minimal"
ORGANIZATION_ID = "3f9b6f8e-0000-4000-8000-000000000f0a"
BUSINESS_UNIT_ID = "7c2d1a9b-0000-4000-8000-0000000000b0"

# Hex codes Dataverse returns (power-apps/developer/data-platform/reference/web-service-error-codes).
NOT_FOUND = "0x80040217"
DUPLICATE = "0x80040237"
VERSION_MISMATCH = "0x80060882"
QUERY_ERROR = "0x80060888"
PAYLOAD_ERROR = "0x80048d19"


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(status: int, body: object, headers: dict | None = None) -> Reply:
    return Reply(status, json.dumps(body).encode(), {"Content-Type": JSON_TYPE, "OData-Version": "4.0", **(headers or {})})


def error_reply(status: int, code: str, message: str) -> Reply:
    return json_reply(status, {"error": {"code": code, "message": message}})


class WebApi:
    def __init__(self, store: ContactStore, max_page_size: int = 5000, tracking: ChangeTracking | None = None):
        self.store = store
        self.max_page_size = max_page_size
        self.tracking = tracking or ChangeTracking()

    def handle(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes,
               service_root: str, user_id: str) -> Reply:
        """`path` is relative to the service root (`.../api/data/v9.2/`); header names lower-case."""
        if path == "WhoAmI" and method == "GET":
            return json_reply(200, {
                "@odata.context": f"{service_root}$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse",
                "BusinessUnitId": BUSINESS_UNIT_ID, "UserId": user_id, "OrganizationId": ORGANIZATION_ID,
            })
        if path.startswith("EntityDefinitions") and method == "GET":
            return self.entity_definitions(path, query, service_root)
        if path == ENTITY_SET:
            if method == "GET":
                if "odata.track-changes" in headers.get("prefer", "") or "$deltatoken" in query:
                    return self.delta(query, headers, service_root)
                return self.query(query, headers, service_root)
            if method == "POST":
                return self.create(body, headers, service_root)
        match = re.fullmatch(rf"{ENTITY_SET}\((.*)\)", path)
        if match:
            key = parse_key(match.group(1))
            if key is None:
                return error_reply(400, QUERY_ERROR, f"Bad Request - Error in query syntax: invalid key '{match.group(1)}'.")
            contact = self.store.get(key[1]) if key[0] == "contactid" else self.store.get_by_key(key[1])
            if method == "GET":
                if contact is None:
                    return self._missing(key)
                select = parse_select(query.get("$select"))
                if isinstance(select, Reply):
                    return select
                return json_reply(200, {"@odata.context": f"{service_root}$metadata#{ENTITY_SET}/$entity",
                                        **row(contact, select)})
            if method == "PATCH":
                return self.patch(key, contact, body, headers, service_root, query)
            if method == "DELETE":
                if contact is None:
                    return self._missing(key)
                self.store.delete(contact)
                return Reply(204, headers={"OData-Version": "4.0"})
        segment = path.split("(")[0].split("/")[0] or path
        return error_reply(404, QUERY_ERROR, f"Resource not found for the segment '{segment}'.")

    # -- query -------------------------------------------------------------------------------

    def query(self, query: dict[str, str], headers: dict[str, str], service_root: str) -> Reply:
        unsupported = [name for name in query if name.startswith("$") and name not in ("$select", "$filter", "$skiptoken", "$top")]
        if "$skip" in unsupported:
            return error_reply(400, QUERY_ERROR, "The query parameter $skip is not supported")
        if unsupported:
            return error_reply(400, QUERY_ERROR, f"emulator: query option {unsupported[0]} is not implemented")
        select = parse_select(query.get("$select"))
        if isinstance(select, Reply):
            return select
        predicate = parse_filter(query.get("$filter"))
        if isinstance(predicate, Reply):
            return predicate
        requested = _max_page_size(headers.get("prefer", ""))
        page_size = min(requested or self.max_page_size, self.max_page_size)
        after, page = -1, 1
        if "$skiptoken" in query:
            cookie = _read_skiptoken(query["$skiptoken"])
            if cookie is None:
                return error_reply(400, QUERY_ERROR, "The $skiptoken is not valid.")
            after, page = cookie
        top = int(query["$top"]) if query.get("$top", "").isdigit() else None
        limit = min(page_size, top) if top is not None else page_size
        rows, last_seq, more = [], after, False
        for contact in self.store.ordered(after):
            if not predicate(contact.attrs):
                continue
            if len(rows) == limit:
                more = True
                break
            rows.append(row(contact, select))
            last_seq = contact.seq
        columns = ",".join(select) if select else ""
        body = {"@odata.context": f"{service_root}$metadata#{ENTITY_SET}({columns})" if columns
                else f"{service_root}$metadata#{ENTITY_SET}", "value": rows}
        if more and top is None:
            kept = "&".join(f"{name}={quote(value, safe=',')}" for name, value in query.items() if name != "$skiptoken")
            token = quote(_skiptoken(last_seq, page + 1), safe="")
            body["@odata.nextLink"] = f"{service_root}{ENTITY_SET}?{kept}{'&' if kept else ''}$skiptoken={token}"
        extra = {"Preference-Applied": f"odata.maxpagesize={page_size}"} if requested else {}
        return json_reply(200, body, extra)

    # -- change tracking ---------------------------------------------------------------------

    def entity_definitions(self, path: str, query: dict[str, str], service_root: str) -> Reply:
        definition = self.tracking.entity_definition()
        if path == "EntityDefinitions(LogicalName='contact')":
            select = [n.strip() for n in query.get("$select", "").split(",") if n.strip()]
            shown = {k: v for k, v in definition.items() if not select or k in select or k == "MetadataId"}
            return json_reply(200, {"@odata.context": f"{service_root}$metadata#EntityDefinitions/$entity", **shown})
        if path == "EntityDefinitions":
            text = query.get("$filter", "")
            wanted = re.fullmatch(r"\s*ChangeTrackingEnabled\s+eq\s+(true|false)\s*", text, re.IGNORECASE)
            if text and wanted is None:
                return error_reply(400, QUERY_ERROR, f"emulator: $filter '{text}' on EntityDefinitions is not implemented")
            rows = [definition] if wanted is None or (wanted.group(1).lower() == "true") == definition[
                "ChangeTrackingEnabled"] else []
            return json_reply(200, {"@odata.context": f"{service_root}$metadata#EntityDefinitions", "value": rows})
        return error_reply(404, QUERY_ERROR, f"Resource not found for the segment '{path}'.")

    def delta(self, query: dict[str, str], headers: dict[str, str], service_root: str) -> Reply:
        """A track-changes read: everything (no token) or what changed since the token, paged."""
        if not self.tracking.enabled:
            return error_reply(400, NOT_TRACKED, f"Change tracking is not enabled for the entity '{ENTITY}'. Enable "
                                                 "Track changes on the table to retrieve changes.")
        refused = [n for n in query if n in ("$filter", "$orderby", "$expand", "$top", "$skip")]
        if refused:
            return error_reply(400, QUERY_ERROR, f"The query parameter {refused[0]} is not supported with change tracking.")
        select = parse_select(query.get("$select"))
        if isinstance(select, Reply):
            return select
        if "$skiptoken" in query:  # a page after the first: the cookie carries the whole read
            cookie = _read_cookie(query["$skiptoken"])
            if cookie is None or "since" not in cookie:
                return error_reply(400, QUERY_ERROR, "The $skiptoken is not valid.")
            since, until, after, page = cookie["since"], cookie["until"], cookie["last"], cookie["page"]
        else:
            since, until, after, page = 0, self.store.version, -1, 1
            if "$deltatoken" in query:
                since = self.tracking.version_of(unquote(query["$deltatoken"]))
                if since is None:
                    return error_reply(400, QUERY_ERROR, "The $deltatoken is not valid.")
                if since < self.tracking.expired_below:
                    return error_reply(400, EXPIRED, "The version stamp associated with the client has expired. "
                                                     "Please perform a full sync.")
        requested = _max_page_size(headers.get("prefer", ""))
        page_size = min(requested or self.max_page_size, self.max_page_size)
        rows, last_seq, more = [], after, False
        if page == 1 and since:
            rows = [{"@odata.context": f"{service_root}$metadata#{ENTITY_SET}/$deletedEntity", "id": contactid,
                     "reason": "deleted"} for version, contactid in self.store.tombstones if since < version <= until]
        shown = 0
        for contact in self.store.ordered(after):
            # Rows changed after the read began are left to the next delta (their version > until).
            if not since < contact.attrs["versionnumber"] <= until:
                continue
            if shown == page_size:
                more = True
                break
            rows.append(row(contact, select))
            shown += 1
            last_seq = contact.seq
        columns = ",".join(select) if select else ""
        body = {"@odata.context": f"{service_root}$metadata#{ENTITY_SET}({columns})/$delta", "value": rows}
        kept = "&".join(f"{name}={quote(value, safe=',')}" for name, value in query.items()
                        if name in ("$select",))
        joiner = "&" if kept else ""
        if more:
            cookie = quote(_skiptoken(last_seq, page + 1, since=since, until=until), safe="")
            body["@odata.nextLink"] = f"{service_root}{ENTITY_SET}?{kept}{joiner}$skiptoken={cookie}"
        else:
            token = quote(self.tracking.token(until), safe="")
            body["@odata.deltaLink"] = f"{service_root}{ENTITY_SET}?{kept}{joiner}$deltatoken={token}"
        applied = ["odata.track-changes"] + ([f"odata.maxpagesize={page_size}"] if requested else [])
        return json_reply(200, body, {"Preference-Applied": ",".join(applied)})

    # -- writes ------------------------------------------------------------------------------

    def patch(self, key: tuple[str, str], contact: Contact | None, body: bytes, headers: dict[str, str],
              service_root: str, query: dict[str, str]) -> Reply:
        values = parse_payload(body)
        if isinstance(values, Reply):
            return values
        if_match, if_none_match = headers.get("if-match"), headers.get("if-none-match")
        if if_match is not None:
            # Prevent create in upsert (If-Match: *) or optimistic concurrency (If-Match: W/"n").
            if contact is None:
                return self._missing(key)
            if if_match.strip() != "*" and if_match.strip() != etag(contact):
                return error_reply(412, VERSION_MISMATCH,
                                   "The version of the existing record doesn't match the RowVersion property provided.")
        if if_none_match is not None and if_none_match.strip() == "*" and contact is not None:
            # Prevent update in upsert.
            return error_reply(412, DUPLICATE, "A record with matching key values already exists.")
        if contact is None:
            if key[0] == KEY:
                values = {KEY: key[1], **values}
            contact = self.store.create(values, contactid=key[1] if key[0] == "contactid" else None)
        else:
            self.store.update(contact, values)
        entity_id = f"{service_root}{ENTITY_SET}({contact.attrs['contactid']})"
        if "return=representation" in headers.get("prefer", ""):
            select = parse_select(query.get("$select"))
            fields = None if isinstance(select, Reply) else select
            return json_reply(200, {"@odata.context": f"{service_root}$metadata#{ENTITY_SET}/$entity",
                                    **row(contact, fields)},
                              {"Preference-Applied": "return=representation", "OData-EntityId": entity_id})
        return Reply(204, headers={"OData-Version": "4.0", "OData-EntityId": entity_id})

    def create(self, body: bytes, headers: dict[str, str], service_root: str) -> Reply:
        values = parse_payload(body)
        if isinstance(values, Reply):
            return values
        if values.get(KEY) and self.store.get_by_key(values[KEY]) is not None:
            return error_reply(412, DUPLICATE, "A record with matching key values already exists.")
        contact = self.store.create(values)
        entity_id = f"{service_root}{ENTITY_SET}({contact.attrs['contactid']})"
        return Reply(204, headers={"OData-Version": "4.0", "OData-EntityId": entity_id, "Location": entity_id})

    def _missing(self, key: tuple[str, str]) -> Reply:
        if key[0] == "contactid":
            return error_reply(404, NOT_FOUND, f"{ENTITY} With Id = {key[1]} Does Not Exist")
        return error_reply(404, NOT_FOUND,
                           f"A record with the specified key values does not exist in {ENTITY} entity")


def etag(contact: Contact) -> str:
    return f'W/"{contact.attrs["versionnumber"]}"'


def row(contact: Contact, select: list[str] | None) -> dict:
    names = select if select else sorted(COLUMNS)
    result = {"@odata.etag": etag(contact)}
    result.update({name: contact.attrs.get(name) for name in names})
    result["contactid"] = contact.attrs["contactid"]  # the primary key always comes back
    return result


def parse_key(text: str) -> tuple[str, str] | None:
    text = unquote(text)
    if re.fullmatch(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", text):
        return ("contactid", text.lower())
    match = re.fullmatch(r"(\w+)='((?:[^']|'')*)'", text)
    if match and match.group(1) == KEY:
        return (KEY, match.group(2).replace("''", "'"))
    return None


def parse_select(text: str | None) -> list[str] | None | Reply:
    if not text:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    for name in names:
        if name not in COLUMNS:
            return error_reply(400, QUERY_ERROR,
                               f"Could not find a property named '{name}' on type 'Microsoft.Dynamics.CRM.{ENTITY}'.")
    return names


_CONDITION = re.compile(r"\s*(\w+)\s+(eq|ne)\s+(true|false|null|'(?:[^']|'')*'|-?\d+)\s*", re.IGNORECASE)


def parse_filter(text: str | None):
    """The subset the client uses: `column eq|ne literal` joined by `and`."""
    if not text:
        return lambda attrs: True
    conditions = []
    for part in re.split(r"\s+and\s+", text.strip()):
        match = _CONDITION.fullmatch(part)
        if match is None:
            return error_reply(400, QUERY_ERROR,
                               f"emulator: $filter '{text}' is outside the supported subset "
                               "(column eq|ne literal, joined by and)")
        name, op, literal = match.group(1), match.group(2).lower(), match.group(3)
        if name not in COLUMNS:
            return error_reply(400, QUERY_ERROR,
                               f"Could not find a property named '{name}' on type 'Microsoft.Dynamics.CRM.{ENTITY}'.")
        value = _literal(literal)
        conditions.append((name, op == "eq", value))
    return lambda attrs: all((attrs.get(name) == value) == equal for name, equal, value in conditions)


def _literal(text: str):
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "null":
        return None
    if text.startswith("'"):
        return text[1:-1].replace("''", "'")
    return int(text)


def parse_payload(body: bytes) -> dict | Reply:
    try:
        values = json.loads(body or b"{}")
    except ValueError:
        return error_reply(400, PAYLOAD_ERROR,
                           f"Error identified in Payload provided by the user for Entity :'{ENTITY_SET}'. "
                           "The request body is not valid JSON.")
    if not isinstance(values, dict):
        return error_reply(400, PAYLOAD_ERROR,
                           f"Error identified in Payload provided by the user for Entity :'{ENTITY_SET}'.")
    for name, value in values.items():
        if name.startswith("@"):
            continue
        if name not in WRITABLE and name not in READ_ONLY:
            return error_reply(400, PAYLOAD_ERROR,
                               f"Error identified in Payload provided by the user for Entity :'{ENTITY_SET}' "
                               f"----> InnerException : Microsoft.OData.ODataException: The property '{name}' does "
                               f"not exist on type 'Microsoft.Dynamics.CRM.{ENTITY}'. Make sure to only use property "
                               "names that are defined by the type or mark the type as open type.")
        if name in BOOLEAN and value is not None and not isinstance(value, bool):
            return error_reply(400, PAYLOAD_ERROR,
                               f"Error identified in Payload provided by the user for Entity :'{ENTITY_SET}' "
                               f"----> InnerException : Cannot convert the literal '{value}' to the expected type "
                               "'Edm.Boolean'.")
    return {k: v for k, v in values.items() if not k.startswith("@") and k not in READ_ONLY}


def _max_page_size(prefer: str) -> int | None:
    match = re.search(r"odata\.maxpagesize\s*=\s*(\d+)", prefer)
    return int(match.group(1)) if match else None


def _skiptoken(last_seq: int, page: int, **tracking: int) -> str:
    # Shaped like Dataverse's paging cookie; opaque to clients, who must pass it back unchanged.
    cookie = base64.urlsafe_b64encode(json.dumps({"last": last_seq, **tracking}).encode()).decode()
    return f'<cookie pagenumber="{page}" pagingcookie="{cookie}" istracking="{bool(tracking)}" />'


def _read_cookie(token: str) -> dict | None:
    text = unquote(token)
    cookie, page = re.search(r'pagingcookie="([^"]+)"', text), re.search(r'pagenumber="(\d+)"', text)
    try:
        values = json.loads(base64.urlsafe_b64decode(cookie.group(1))) if cookie else None
        return {**{k: int(v) for k, v in values.items()}, "page": int(page.group(1)) if page else 2}
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _read_skiptoken(token: str) -> tuple[int, int] | None:
    text = unquote(token)
    cookie, page = re.search(r'pagingcookie="([^"]+)"', text), re.search(r'pagenumber="(\d+)"', text)
    try:
        last = int(json.loads(base64.urlsafe_b64decode(cookie.group(1)))["last"]) if cookie else None
    except (ValueError, KeyError, TypeError):
        return None
    return None if last is None else (last, int(page.group(1)) if page else 2)
