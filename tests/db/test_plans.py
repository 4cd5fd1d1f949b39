"""The hot queries keep plans that scale: read from the executed plans, not from a stopwatch.

Each test builds a modest database (thousands of mentors and queue rows), runs one hot query
and reads every plan it executed, nested statements of PL/pgSQL and SQL functions included
(auto_explain, JSON, actual rows, loops and buffers). Two rules, both independent of how fast
the machine is:

* no per-row full read: under a loop (a node executed more than once: the inner side of a nested
  loop, a correlated SubPlan), no sequential scan of sync_queue, mentors or certifications, no
  index scan of them without an index condition, and no function scan re-read per row;
* no array searched per row: a hot table's scan filtered by `= ANY (array)` costs rows x array;
* buffers follow the query's own rows: the same question asked again after the tables grew five
  times (finished queue rows, mentors) may touch at most 2.5 times the buffers.

Each rule fails on a version this branch fixed (commit b440a59): the settle step's array search
per mentor, record_sync_outcomes' join that re-read the batch's results per
row (a function scan in a loop, or a pending index read per row under stale statistics), the
claim's walk over finished rows (buffers grew with them) and its anti join on the processing
index under stale statistics (an index scan without condition in a loop).
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from datetime import timedelta

import psycopg
import pytest

from mentor_pipeline.sync.health import freshness, write_outage

HOT_TABLES = {"sync_queue", "mentors", "certifications"}
GROWTH = 4  # between the two measurements the tables get GROWTH times more rows (5x in all)
MAX_BUFFER_GROWTH = 2.5  # ... and the buffers of the same question less than this (a table scan: 5x)


# -- reading plans ---------------------------------------------------------------------------

@pytest.fixture(autouse=True, scope="module")
def _server_has_auto_explain(admin_url):
    """The plans are read through auto_explain (nested statements included). pgserver's build of
    PostgreSQL 16 ships without it; CI's second pass (PostgreSQL 15, DATABASE_URL) runs these."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        try:
            conn.execute("load 'auto_explain'")
        except psycopg.errors.UndefinedFile:
            pytest.skip("this PostgreSQL has no auto_explain (pgserver's build lacks it): run the plan tests on one "
                        "that has it, e.g. DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres bin/test "
                        "tests/db/test_plans.py, as CI's PostgreSQL 15 pass does")

@contextlib.contextmanager
def explained(conn: psycopg.Connection):
    """Collects the plan of every statement run on `conn` inside the block, nested statements
    first, each statement after them."""
    notices: list[str] = []
    plans: list[dict] = []

    def keep(diagnostic):
        notices.append(diagnostic.message_primary or "")

    conn.add_notice_handler(keep)
    conn.execute("load 'auto_explain'")
    for setting in ("log_min_duration = 0", "log_analyze = on", "log_buffers = on", "log_timing = off",
                    "log_nested_statements = on", "log_format = json"):
        conn.execute(f"set auto_explain.{setting}")
    conn.execute("set client_min_messages = log")
    try:
        yield plans
    finally:
        conn.execute("set auto_explain.log_min_duration = -1")
        conn.execute("reset client_min_messages")
        conn.remove_notice_handler(keep)
    plans += [json.loads(text[text.index("{"):]) for text in notices if "plan:" in text]
    # The bookkeeping statements of this function itself are no part of it.
    plans[:] = [p for p in plans if "auto_explain" not in p["Query Text"] and "client_min_messages" not in p["Query Text"]]
    assert plans, "auto_explain logged nothing"


def executed_plans(conn: psycopg.Connection, sql: str, params=()) -> list[dict]:
    """Every plan `sql` executed, nested statements first, the statement itself last."""
    with explained(conn) as plans:
        conn.execute(sql, params)
    return plans


def nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def per_row_full_reads(plans: list[dict]) -> list[str]:
    """Nodes executed once per row of another node that read a whole table, index or set."""
    found = []
    for logged in plans:
        for node in nodes(logged["Plan"]):
            if node.get("Actual Loops", 1) <= 1:
                continue
            kind, relation = node["Node Type"], node.get("Relation Name")
            full = (
                (kind == "Seq Scan" and relation in HOT_TABLES)
                or (kind in ("Index Scan", "Index Only Scan") and relation in HOT_TABLES and "Index Cond" not in node)
                or (kind == "Function Scan" and node.get("Actual Rows", 0) > 1)
            )
            if full:
                found.append(f"{kind} on {relation or node.get('Function Name')} x {node['Actual Loops']} loops "
                             f"({node.get('Index Name', '')}) in: {logged['Query Text'].strip()[:200]}")
    # A filter that searches an array (a parameter, or a long literal) for every row of a hot
    # table: rows x array length. A short literal list (status in two values) is no search.
    for logged in plans:
        for node in nodes(logged["Plan"]):
            searched = re.search(r"= ANY \((\$\d+|'\{[^}]*\}')", node.get("Filter", ""))
            if node.get("Relation Name") in HOT_TABLES and searched and (
                    searched.group(1).startswith("$") or searched.group(1).count(",") >= 10):
                found.append(f"{node['Node Type']} on {node['Relation Name']} searching an array per row "
                             f"({node['Filter']}) in: {logged['Query Text'].strip()[:200]}")
    # A function called once per row plans its statements on its own: the same statement logged
    # many times with a sequential scan of a hot table is the same mistake one level down.
    texts = [logged["Query Text"] for logged in plans]
    for logged in plans:
        if texts.count(logged["Query Text"]) > 10 and any(
                n["Node Type"] == "Seq Scan" and n.get("Relation Name") in HOT_TABLES for n in nodes(logged["Plan"])):
            found.append(f"Seq Scan in a statement run {texts.count(logged['Query Text'])} times: "
                         f"{logged['Query Text'].strip()[:200]}")
    return sorted(set(found))


def buffers(plans: list[dict]) -> int:
    """Shared buffers the statement touched, its nested statements included."""
    root = plans[-1]["Plan"]
    return root["Shared Hit Blocks"] + root["Shared Read Blocks"]


def checked(conn: psycopg.Connection, sql: str, params=()) -> int:
    """Run `sql`, fail on a per-row full read, return its buffers."""
    plans = executed_plans(conn, sql, params)
    assert per_row_full_reads(plans) == []
    return buffers(plans)


def assert_buffers_follow_rows(small: int, large: int) -> None:
    assert large <= MAX_BUFFER_GROWTH * small, (
        f"{small} buffers, then {large} after the tables grew {GROWTH}x: the query reads what it does not need")


# -- data ------------------------------------------------------------------------------------

def grow(conn: psycopg.Connection, mentors: int, *, analyze: bool = True, finish: bool = True) -> list[str]:
    """`mentors` more active HLF mentors in 20 chapters with valid certifications and a confirmed
    listing, whose queue rows (queued by the certifications) are finished: the done rows a week
    of drains leaves before the archive (`finish`: False leaves them pending). Returns their ids."""
    conn.execute("insert into organizations (code, name, website_sync_enabled) values ('HLF', 'HLF', true)"
                 " on conflict do nothing")
    conn.execute("insert into chapters (organization_id, name) select o.id, 'HLF chapter ' || g"
                 " from organizations o, generate_series(1, 20) g where o.code = 'HLF' on conflict do nothing")
    ids = [str(row[0]) for row in conn.execute(
        """
        insert into mentors (organization_id, chapter_id, full_name, status)
        select c.organization_id, c.id, 'Mentor ' || g, 'active'
          from generate_series(1, %s) g
          join (select row_number() over (order by id) - 1 as slot, id, organization_id from chapters) c
            on c.slot = g %% 20
        returning id
        """, (mentors,))]
    conn.execute("insert into certifications (mentor_id, issued_at, expires_at)"
                 " select m, now() - interval '300 days', now() + interval '400 days' from unnest(%s::uuid[]) m", (ids,))
    if finish:
        conn.execute("update sync_queue set status = 'done', processed_at = now() where status = 'pending'")
    conn.execute("insert into website_listing_state (mentor_id, listed, chapter_name)"
                 " select m.id, true, c.name from mentors m join chapters c on c.id = m.chapter_id"
                 " where m.id = any(%s::uuid[])", (ids,))
    if analyze:
        conn.execute("analyze")
    return ids


def enqueue(conn: psycopg.Connection, ids: list[str]) -> None:
    conn.execute("select queue_website_sync(%s::uuid[], 'reconciliation')", (ids,))


def claim(conn: psycopg.Connection, limit: int) -> uuid.UUID:
    token = uuid.uuid4()
    conn.execute("select count(*) from claim_sync_batch(%s, interval '5 minutes', %s)", (limit, token))
    return token


CLAIM = "select count(*) from claim_sync_batch(500, interval '5 minutes', %s)"


# -- the drain -------------------------------------------------------------------------------

def test_the_claim_reads_the_due_rows_not_the_finished_ones(db):
    # Statistics taken during a burst (every row pending), then the drain finished it.
    first = grow(db, 2000, finish=False)
    db.execute("update sync_queue set status = 'done', processed_at = now()")
    enqueue(db, first[:500])
    small = checked(db, CLAIM, (uuid.uuid4(),))

    more = grow(db, 2000 * GROWTH, finish=False)
    db.execute("update sync_queue set status = 'done', processed_at = now() where status <> 'done'")
    enqueue(db, more[:500])
    assert_buffers_follow_rows(small, checked(db, CLAIM, (uuid.uuid4(),)))


def test_the_claim_probes_rows_in_flight_per_row_even_with_stale_statistics(db):
    # Statistics taken while the queue was empty (a quiet spell), then a burst: the planner
    # believes sync_queue holds nothing.
    ids = grow(db, 3000, analyze=False)
    db.execute("delete from sync_queue")
    db.execute("analyze")
    enqueue(db, ids)
    claim(db, 1000)  # a batch in flight: the processing index is not empty
    checked(db, CLAIM, (uuid.uuid4(),))


def test_each_claim_of_a_first_reconciliation_probes_per_key_on_a_long_lived_connection(db):
    # Statistics from an empty queue, then every mentor queued in one statement, then one drain
    # claiming batch after batch on its connection: after five calls PL/pgSQL plans the claim's
    # statements generically (the keys' count unknown). A join of the keys with sync_queue then
    # read the whole pending index once per key.
    ids = grow(db, 3000, analyze=False)
    db.execute("delete from sync_queue")
    db.execute("analyze")
    enqueue(db, ids)
    for _ in range(6):
        claim(db, 200)
    checked(db, CLAIM, (uuid.uuid4(),))


@pytest.mark.parametrize("fresh_statistics", [False, True])
def test_recording_a_batchs_outcomes_finds_each_row_once(db, fresh_statistics):
    ids = grow(db, 3000, analyze=False)
    db.execute("delete from sync_queue")
    db.execute("analyze")
    enqueue(db, ids[:1000])
    if fresh_statistics:
        db.execute("analyze sync_queue")
    token = claim(db, 1000)
    (results,) = db.execute(
        "select jsonb_agg(jsonb_build_object('id', id, 'outcome', 'done', 'listed', false))"
        " from sync_queue where lease_token = %s", (token,)).fetchone()
    plans = executed_plans(db, "select count(*) from record_sync_outcomes(%s, %s, 8, interval '30 seconds',"
                               " interval '1 hour')", (token, json.dumps(results)))
    assert per_row_full_reads(plans) == []
    assert db.execute("select count(*) from sync_queue where status = 'done' and lease_token is null"
                      " and id in (select (r->>'id')::bigint from jsonb_array_elements(%s::jsonb) r)",
                      (json.dumps(results),)).fetchone()[0] == 1000


def record_all_done(conn: psycopg.Connection, token: uuid.UUID) -> int:
    (results,) = conn.execute(
        "select jsonb_agg(jsonb_build_object('id', id, 'outcome', 'done', 'listed', true))"
        " from sync_queue where lease_token = %s", (token,)).fetchone()
    return checked(conn, "select count(*) from record_sync_outcomes(%s, %s, 8, interval '30 seconds',"
                         " interval '1 hour')", (token, json.dumps(results)))


def test_recording_a_batch_reads_the_held_rows_not_the_whole_queue(db):
    # A first reconciliation: statistics from an empty queue, then every mentor queued at once.
    ids = grow(db, 2000 * (1 + GROWTH), analyze=False)
    db.execute("delete from sync_queue")
    db.execute("analyze")
    enqueue(db, ids[:2000])
    small = record_all_done(db, claim(db, 500))
    enqueue(db, ids[2000:])
    assert_buffers_follow_rows(small, record_all_done(db, claim(db, 500)))


DESIRED = ("select mentor_id, in_app, organization_code, full_name, status, chapter_name, should_be_listed, reason"
           " from website_desired_listing(%s::uuid[], now())")


def test_the_drains_desired_state_read_follows_the_claimed_keys(db):
    first = grow(db, 2000)
    small = checked(db, DESIRED, (first[:500],))
    more = grow(db, 2000 * GROWTH)
    assert_buffers_follow_rows(small, checked(db, DESIRED, (more[:500],)))


TICK = "select * from website_sync_tick(now())"


def lapse(conn: psycopg.Connection, ids: list[str]) -> None:
    """Certifications of `ids` lapsed a moment ago, since the clock's last look."""
    conn.execute("update website_sync_clock set checked_until = now() - interval '1 minute'")
    conn.execute("update certifications set expires_at = now() - interval '1 second' where mentor_id = any(%s::uuid[])",
                 (ids,))
    conn.execute("delete from sync_queue where status = 'pending'")  # marked by the clock, not the edit


def test_the_clock_tick_reads_the_certifications_that_crossed(db):
    first = grow(db, 2000)
    lapse(db, first[:50])
    small = checked(db, TICK)
    more = grow(db, 2000 * GROWTH)
    lapse(db, more[:50])
    assert_buffers_follow_rows(small, checked(db, TICK))
    assert db.execute("select count(*) from sync_queue where status = 'pending' and mentor_id = any(%s::uuid[])",
                      (more[:50],)).fetchone()[0] == 50


# -- reconciliation --------------------------------------------------------------------------

APP_STATE = "select * from reconciliation_app_state(%s::uuid[], now())"


def test_the_settle_step_reads_the_acted_mentors_not_all(db):
    first = grow(db, 2000)
    enqueue(db, first[:1000])  # the mentors a run acted on, their rows waiting
    small = checked(db, APP_STATE, (first[:1000],))
    more = grow(db, 2000 * GROWTH)
    enqueue(db, more[:1000])
    assert_buffers_follow_rows(small, checked(db, APP_STATE, (more[:1000],)))
    rows = db.execute(APP_STATE, (more[:1000],)).fetchall()
    assert len(rows) == 1000 and all(row[5] for row in rows)  # in_queue


def test_the_full_app_side_reads_each_mentor_once(db):
    ids = grow(db, 3000)
    enqueue(db, ids[:1000])
    checked(db, "select * from reconciliation_app_state(null, now())")


# -- the coordinator RPCs, incidents and freshness -------------------------------------------

COORDINATOR = uuid.UUID("00000000-0000-4000-8000-00000000c001")


def as_coordinator(conn: psycopg.Connection) -> None:
    conn.execute("insert into coordinators (user_id, organization_id) select %s, id from organizations"
                 " where code = 'HLF' on conflict do nothing", (COORDINATOR,))
    conn.execute("select set_config('request.jwt.claims', %s, false)", (json.dumps({"sub": str(COORDINATOR)}),))


def sequential_scans(plans: list[dict]) -> list[str]:
    return sorted({f"{n['Relation Name']} in: {p['Query Text'].strip()[:200]}" for p in plans for n in nodes(p["Plan"])
                   if n["Node Type"] == "Seq Scan" and n.get("Relation Name") in HOT_TABLES})


@pytest.mark.parametrize("rpc", ["website_sync_status", "request_website_sync"])
def test_the_coordinator_rpcs_read_one_mentors_rows(db, rpc):
    first = grow(db, 2000)
    as_coordinator(db)
    small = checked(db, f"select * from {rpc}(%s)", (first[0],))
    more = grow(db, 2000 * GROWTH)
    plans = executed_plans(db, f"select * from {rpc}(%s)", (more[1],))
    # One mentor's question: no table of the app or the queue is read whole.
    assert per_row_full_reads(plans) == [] and sequential_scans(plans) == []
    assert_buffers_follow_rows(small, buffers(plans))


@pytest.mark.parametrize("sql", [
    "select * from unresolved_dead_sync_rows(interval '0 seconds', now())",
    "select * from sync_queue_left(now() - interval '1 hour', now())",
    "select * from sync_queue_due(now())",
])
def test_the_incident_and_leftover_checks_read_no_table_per_row(db, sql):
    ids = grow(db, 3000)
    enqueue(db, ids[:1000])
    db.execute("update sync_queue set status = 'dead', processed_at = now() - interval '1 day'"
               " where id in (select id from sync_queue where status = 'done' limit 500)")
    db.execute("analyze sync_queue")
    checked(db, sql)


def test_the_freshness_and_outage_checks_read_no_table_per_row(db):
    ids = grow(db, 3000)
    enqueue(db, ids[:1000])
    db.execute("update sync_queue set last_error = 'ConnectError: unreachable', attempts = 1"
               " where status = 'pending'")
    db.execute("analyze sync_queue")
    # The checks' own SQL, as the processor and the freshness check send it.
    with explained(db) as plans:
        assert freshness(db, timedelta(minutes=30)).waiting == 1000
        write_outage(db)
    assert per_row_full_reads(plans) == []


# -- the status inbox ------------------------------------------------------------------------

MOVE = "select move_status_changes()"


def change_statuses(conn: psycopg.Connection, ids: list[str]) -> None:
    """A spell of the app's status changes: pauses, reinstatements (paused, then active with a
    valid certification) and other transitions (active -> retired), 100 each, one transaction each
    kind, as the inbox holds them for the tick."""
    conn.execute("update mentors set status = 'paused' where id = any(%s::uuid[])", (ids[:200],))
    conn.execute("update mentors set status = 'active' where id = any(%s::uuid[])", (ids[100:200],))
    conn.execute("update mentors set status = 'retired' where id = any(%s::uuid[])", (ids[200:300],))


def test_the_move_reads_the_changes_not_the_mentors(db):
    first = grow(db, 2000)
    change_statuses(db, first)
    small = checked(db, MOVE)
    more = grow(db, 2000 * GROWTH)
    change_statuses(db, more)
    assert_buffers_follow_rows(small, checked(db, MOVE))
    assert db.execute("select count(*) from sync_queue where status = 'pending' and mentor_id = any(%s::uuid[])",
                      (more[:300],)).fetchone()[0] == 400  # 200 pauses, 100 reinstatements, 100 retirements
