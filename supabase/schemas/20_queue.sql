-- The queue processor's side of the outbox: the claim/lease protocol, outcome recording, the
-- listing state per mentor as last confirmed by a Dynamics write, the archive that keeps
-- sync_queue small, and the drain path's questions (what is due, what a drain left undone).
-- docs/design/sync.md explains the protocol; mentor_pipeline/sync/store.py maps each function
-- here to one Python method. Every function that decides by time takes p_at (default now()):
-- decisions and what they are compared with later (available_at, locked_until, processed_at,
-- last_synced_at) use p_at; bookkeeping columns (created_at, updated_at, archived_at) stay on
-- the wall clock.

-- At most one row per mentor is being applied at any moment, enforced by the database:
-- a stale 'processing' row and a newer 'pending' row for the same mentor can never both be
-- in flight, so two writes for one mentor never race each other to Dynamics.
create unique index sync_queue_one_processing_per_mentor on sync_queue (mentor_id) where status = 'processing';
-- Keeps "what is due" an index-only lookup while done rows pile up until they are archived.
create index sync_queue_pending_due on sync_queue (available_at, id) where status = 'pending';
create index sync_queue_processing_lease on sync_queue (locked_until) where status = 'processing';
-- Finished rows waiting for the archive.
create index sync_queue_finished on sync_queue (processed_at) where status in ('done', 'superseded', 'dead');

-- What the website listing is now, per mentor, as last confirmed by a Dynamics write.
-- Reconciliation and the UI compare against this without asking Dynamics. The mentor key
-- outlives the mentor row (no foreign key): a deleted mentor's listing state must survive the
-- delete, or the contact stays published.
create table website_listing_state (
    mentor_id uuid primary key,
    listed boolean not null,
    last_synced_at timestamptz not null default now(),
    -- The sync_queue row whose write set this state (null when set by something else,
    -- e.g. reconciliation reading Dynamics).
    last_queue_id bigint,
    updated_at timestamptz not null default now(),
    -- What the pipeline last confirmed in Dynamics' chapter column (the public page groups by it).
    chapter_name text
);

-- Finished queue rows older than the retention period move here: sync_queue stays small and
-- its indexes hot, while the history stays queryable.
create table sync_queue_archive (
    id bigint primary key,
    mentor_id uuid not null,
    operation text not null,
    triggered_by_event text not null,
    status text not null,
    attempts integer not null,
    available_at timestamptz not null,
    locked_until timestamptz,
    last_error text,
    created_at timestamptz not null,
    updated_at timestamptz not null,
    processed_at timestamptz,
    lease_token uuid,
    archived_at timestamptz not null default now()
);
create index sync_queue_archive_mentor on sync_queue_archive (mentor_id, id);

-- ---------------------------------------------------------------------------------------------
-- The claim/lease protocol

-- Claim up to p_limit rows for one processor: due 'pending' rows and 'processing' rows whose
-- lease ran out (their processor died), at most one per mentor, due the longest first. The rows get
-- status 'processing', a lease until p_at + p_lease and the caller's token. Runs as one short
-- transaction; the caller commits before any HTTP call, so no row lock is held during it.
--
-- Claims that race each other each take their own rows. Choosing the candidates first (the
-- oldest due ids) and only then locking them with SKIP LOCKED would let a claim running while
-- another one still held those same candidates skip all of them and return nothing, so a drain
-- would end with "nothing due" while hundreds of rows were. So each kind of claimable row is
-- locked by the scan that picks it, so a locked row is passed over and the limit is filled from
-- the rows behind it. A row another claim took and committed meanwhile is re-checked on its
-- current version by FOR UPDATE and drops out (it is no longer pending).
create function claim_sync_batch(p_limit integer, p_lease interval, p_token uuid, p_at timestamptz default now())
returns setof sync_queue
language plpgsql
set search_path = public, pg_temp
as $$
declare
    tries integer := 0;
    due_keys uuid[];
    lease_keys uuid[];
    mentor_keys uuid[];
    waiting_ids bigint[];
    waiting_keys uuid[];
    newest_ids bigint[];
    absorbed_ids bigint[];
    claimed sync_queue[];
begin
    -- The status changes committed so far first, as the tick does: a claim takes every change
    -- the app has committed.
    perform move_status_changes();
    loop
        begin
            -- A stale lease for a mentor who has a newer pending row: the newer row carries
            -- the latest wanted state, so the stale one is superseded, never re-applied.
            update sync_queue s
               set status = 'superseded',
                   processed_at = p_at,
                   updated_at = now(),
                   locked_until = null,
                   lease_token = null,
                   last_error = 'lease expired; superseded by newer row ' || p.id
              from sync_queue p
             where s.status = 'processing'
               and s.locked_until < p_at
               and p.mentor_id = s.mentor_id
               and p.status = 'pending';

            -- The mentors to write: those of the rows due the longest first and of the leases
            -- that ran out, at most p_limit. Each kind of row is locked by the scan that picks it,
            -- so a row another claim holds is passed over and the limit is filled from the rows
            -- behind it.
            select coalesce(array_agg(d.mentor_id order by d.available_at, d.id), '{}') into due_keys
              from (select q.id, q.mentor_id, q.available_at
                      from sync_queue q
                     where q.status = 'pending'
                       and q.available_at <= p_at
                       -- one row per mentor in flight: a newer row waits for the current one. The
                       -- mentors in flight are read once into a hash (NOT IN over a NOT NULL key),
                       -- never once per due row.
                       and q.mentor_id not in (select p.mentor_id from sync_queue p where p.status = 'processing')
                     -- sync_queue_pending_due's order: the scan starts at the first due row and
                     -- stops at the limit.
                     order by q.available_at, q.id
                     limit p_limit
                       for update skip locked) d;
            select coalesce(array_agg(e.mentor_id order by e.id), '{}') into lease_keys
              from (select q.id, q.mentor_id
                      from sync_queue q
                     where q.status = 'processing'
                       and q.locked_until < p_at
                     order by q.id
                     limit p_limit
                       for update skip locked) e;
            mentor_keys := (select coalesce(array_agg(k.mentor_id order by k.first_taken), '{}')
                              from (select u.mentor_id, min(u.taken) as first_taken
                                      from unnest(due_keys || lease_keys) with ordinality u(mentor_id, taken)
                                     group by u.mentor_id) k)[1:p_limit];

            -- Every change waiting for those mentors, wherever it sits in the queue: one write
            -- carries them all. The newest is claimed, the others are absorbed into it. A row
            -- another claim holds is passed over (that claim writes the mentor; the processing
            -- index stops a second write in flight).
            select coalesce(array_agg(w.id), '{}'), coalesce(array_agg(w.mentor_id), '{}')
              into waiting_ids, waiting_keys
              -- One probe of sync_queue_pending_mentor per key, whatever the statistics say
              -- (LATERAL: the lookup runs per key). As a join, with sync_queue analyzed while
              -- nearly empty, the planner read the whole pending index once per key; as
              -- `mentor_id = any (mentor_keys)`, it read it searching the array per row.
              from unnest(mentor_keys) k(mentor_id)
              cross join lateral (
                    select q.id, q.mentor_id
                      from sync_queue q
                     where q.mentor_id = k.mentor_id
                       and q.status = 'pending'
                       and (q.available_at <= p_at or q.attempts > 0)
                       for update skip locked) w;
            select waiting_ids || coalesce(array_agg(w.id), '{}'), waiting_keys || coalesce(array_agg(w.mentor_id), '{}')
              into waiting_ids, waiting_keys
              from unnest(mentor_keys) k(mentor_id)
              cross join lateral (
                    select q.id, q.mentor_id
                      from sync_queue q
                     where q.mentor_id = k.mentor_id
                       and q.status = 'processing'
                       and q.locked_until < p_at
                       for update skip locked) w;
            newest_ids := array(select distinct on (w.mentor_id) w.id
                                  from unnest(waiting_ids, waiting_keys) w(id, mentor_id)
                                 order by w.mentor_id, w.id desc);
            absorbed_ids := array(select unnest(waiting_ids) except select unnest(newest_ids));

            update sync_queue q
               set status = 'superseded',
                   processed_at = p_at,
                   updated_at = now(),
                   locked_until = null,
                   lease_token = null,
                   last_error = 'absorbed: written with the newest waiting change of this mentor'
             -- The ids as one array probed in the primary key (an InitPlan: its size unknown to
             -- the planner). Joined with unnest, or as the variable itself, with statistics from
             -- a nearly empty queue, the planner scanned all of sync_queue against the array.
             where q.id = any (array(select unnest(absorbed_ids)));

            with updated as (
                update sync_queue q
                   set status = 'processing',
                       locked_until = p_at + p_lease,
                       lease_token = p_token,
                       -- a lease that ran out means a processor died holding this row: that
                       -- counts as an attempt, so a row that kills its processor ends up dead
                       attempts = q.attempts + case when q.status = 'processing' then 1 else 0 end,
                       last_error = case when q.status = 'processing'
                                         then 'lease expired before the outcome was recorded (processor stopped?)'
                                         else q.last_error end,
                       updated_at = now()
                 -- One array probed in the primary key, as above.
                 where q.id = any (array(select unnest(newest_ids)))
                returning q.*
            )
            select coalesce(array_agg(u order by u.id), '{}') into claimed from updated u;
            exit;
        exception when unique_violation then
            -- Another transaction put a row of one of these mentors in flight between our
            -- snapshot and our update. Look again.
            tries := tries + 1;
            if tries >= 5 then
                raise;
            end if;
        end;
    end loop;
    return query select * from unnest(claimed);
end
$$;

-- Push the lease of every row still held under p_token to p_at + p_lease; returns how many.
-- The processor calls this while it waits on Dynamics (429 waits can be long).
create function extend_sync_lease(p_token uuid, p_lease interval, p_at timestamptz default now())
returns integer
language sql
set search_path = public, pg_temp
as $$
    with extended as (
        update sync_queue
           set locked_until = p_at + p_lease
         where status = 'processing' and lease_token = p_token
        returning 1
    )
    select count(*)::integer from extended
$$;

-- Record what happened to claimed rows, all at once. p_results is a JSON array of
--   {"id": 1, "outcome": "done|retry|dead|superseded|release", "error": "...",
--    "listed": true, "chapter": "...", "consume_attempt": true}
-- done        the write is confirmed: row done, website_listing_state updated (listed, and the
--             chapter written when given).
-- retry       try again later: attempts + 1 (unless consume_attempt is false: 429 waits),
--             available_at after exponential backoff, dead once attempts reach p_max_attempts.
-- dead        give up now (e.g. the contact does not exist in Dynamics).
-- superseded  nothing to write: the mentor's current state says the operation is no longer right.
-- release     put back untouched (auth failure): pending, attempts unchanged, due now.
-- A row that goes back to pending while a newer pending row exists for the mentor is
-- superseded instead (the newer row carries the latest wanted state).
-- Only rows still held under p_token change; the result lists them with their new status, so
-- the caller sees which rows it had lost to an expired lease.
create function record_sync_outcomes(
    p_token uuid,
    p_results jsonb,
    p_max_attempts integer,
    p_backoff_base interval,
    p_backoff_max interval,
    p_at timestamptz default now())
returns table (id bigint, mentor_id uuid, status text, attempts integer, available_at timestamptz,
               last_error text, processed_at timestamptz)
language plpgsql
set search_path = public, pg_temp
as $$
#variable_conflict use_column
declare
    tries integer := 0;
    recorded jsonb;
    -- The results keyed by row id.
    by_id jsonb := (select coalesce(jsonb_object_agg(x ->> 'id', x), '{}') from jsonb_array_elements(p_results) x);
begin
    loop
        begin
            with mine as (
                -- Each held row looks its result up by id in a JSON object: no join, so no plan
                -- can re-read the results once per row. (As a join of jsonb_to_recordset, with
                -- the planner expecting ~1 held row, it did: batch x batch per call, the burst
                -- drain's regression; a LATERAL probe per result chose a processing index
                -- without condition when the statistics said the queue was empty.)
                select q.id, q.mentor_id, r.outcome, r.error, r.listed, r.chapter,
                       q.attempts + case when r.outcome = 'retry' and coalesce(r.consume_attempt, true)
                                         then 1 else 0 end as new_attempts,
                       -- Asked only for outcomes that can go back to pending (the caller sends those
                       -- one row per call), so a batch of done rows probes nothing.
                       case when r.outcome in ('retry', 'release')
                            then exists (select 1 from sync_queue p
                                          where p.mentor_id = q.mentor_id and p.status = 'pending')
                            else false
                       end as newer_pending
                  from sync_queue q
                  cross join lateral jsonb_to_record(by_id -> q.id::text)
                       as r(outcome text, error text, listed boolean, chapter text, consume_attempt boolean)
                 where q.status = 'processing' and q.lease_token = p_token and by_id ? q.id::text
                   for update of q
            ),
            decided as (
                select m.*,
                       case
                           when m.outcome in ('done', 'dead', 'superseded') then m.outcome
                           when m.outcome = 'retry' and m.new_attempts >= p_max_attempts then 'dead'
                           when m.outcome in ('retry', 'release') and m.newer_pending then 'superseded'
                           when m.outcome in ('retry', 'release') then 'pending'
                       end as new_status
                  from mine m
            ),
            decisions as materialized (
                -- The decisions keyed by row id, in one value that the update looks each row up
                -- in. As a join with `decided`, with sync_queue believed nearly empty (statistics
                -- from before a burst), the planner scanned every row of sync_queue against every
                -- decision: 100,000 x 1,000 per batch of a first reconciliation. MATERIALIZED:
                -- built once, not once per row.
                select coalesce(jsonb_object_agg(d.id::text, jsonb_build_object(
                           'new_status', d.new_status, 'new_attempts', d.new_attempts, 'outcome', d.outcome,
                           'error', d.error)), '{}') as by_row
                  from decided d
            ),
            updated as (
                update sync_queue q
                   set (status, attempts, locked_until, lease_token, updated_at, processed_at, available_at,
                        last_error) = (
                       select d.new_status,
                              d.new_attempts,
                              null::timestamptz,
                              null::uuid,
                              now(),
                              case when d.new_status = 'pending' then null else p_at end,
                              case
                                  when d.new_status <> 'pending' then q.available_at
                                  when d.outcome = 'retry' and d.new_attempts > 0 then
                                      p_at + least(p_backoff_max, p_backoff_base * power(2, d.new_attempts - 1))
                                  else p_at
                              end,
                              case
                                  when d.new_status = 'done' then d.error
                                  when d.outcome = 'retry' and d.new_status = 'dead' then
                                      format('gave up after %s attempts: %s', d.new_attempts, d.error)
                                  when d.outcome in ('retry', 'release') and d.new_status = 'superseded' then
                                      coalesce(d.error || '; ', '') || 'superseded by a newer queued change'
                                  else coalesce(d.error, q.last_error)
                              end
                         from jsonb_to_record(s.by_row -> q.id::text)
                              as d(new_status text, new_attempts integer, outcome text, error text))
                  from decisions s
                 where s.by_row ? q.id::text and q.status = 'processing' and q.lease_token = p_token
                returning q.id, q.mentor_id, q.status, q.attempts, q.available_at, q.last_error, q.processed_at
            ),
            listing as (
                -- The confirmed write is what the website listing now is.
                insert into website_listing_state as w (mentor_id, listed, chapter_name, last_synced_at, last_queue_id, updated_at)
                select d.mentor_id, d.listed, d.chapter, p_at, d.id, now()
                  from decided d
                 where d.new_status = 'done' and d.listed is not null
                on conflict (mentor_id) do update
                    set listed = excluded.listed,
                        chapter_name = coalesce(excluded.chapter_name, w.chapter_name),
                        last_synced_at = excluded.last_synced_at,
                        last_queue_id = excluded.last_queue_id,
                        updated_at = excluded.updated_at
            )
            select coalesce(jsonb_agg(to_jsonb(u) order by u.id), '[]'::jsonb) into recorded from updated u;
            exit;
        exception when unique_violation then
            -- The outbox trigger queued a newer pending row between our check and our update:
            -- decide again, now seeing it.
            tries := tries + 1;
            if tries >= 5 then
                raise;
            end if;
        end;
    end loop;
    return query
        select x.id, x.mentor_id, x.status, x.attempts, x.available_at, x.last_error, x.processed_at
          from jsonb_to_recordset(recorded)
               as x(id bigint, mentor_id uuid, status text, attempts integer, available_at timestamptz,
                    last_error text, processed_at timestamptz);
end
$$;

-- Move finished rows older than their retention into sync_queue_archive, at most p_limit per
-- call; returns how many moved. Dead rows wait longer: somebody should look at them first.
create function archive_sync_queue(
    p_done_retention interval default interval '7 days',
    p_dead_retention interval default interval '90 days',
    p_limit integer default 5000,
    p_at timestamptz default now())
returns integer
language sql
set search_path = public, pg_temp
as $$
    with old as (
        select id from sync_queue
         where (status in ('done', 'superseded') and processed_at < p_at - p_done_retention)
            or (status = 'dead' and processed_at < p_at - p_dead_retention)
         order by processed_at
         limit p_limit
           for update skip locked
    ),
    moved as (
        delete from sync_queue q using old where q.id = old.id
        returning q.id, q.mentor_id, q.operation, q.triggered_by_event, q.status, q.attempts, q.available_at,
                  q.locked_until, q.last_error, q.created_at, q.updated_at, q.processed_at, q.lease_token
    ),
    archived as (
        insert into sync_queue_archive (id, mentor_id, operation, triggered_by_event, status, attempts,
                                        available_at, locked_until, last_error, created_at, updated_at,
                                        processed_at, lease_token)
        select * from moved
        on conflict (id) do nothing
        returning 1
    )
    select count(*)::integer from moved
$$;

-- ---------------------------------------------------------------------------------------------
-- The drain path's questions

-- The sensor's question, answered from the partial indexes alone: how much is due at p_at, the
-- newest due id, and how many leases ran out.
create function sync_queue_due(p_at timestamptz default now())
returns table (due_count bigint, max_due_id bigint, expired_leases bigint)
language sql
stable
set search_path = public, pg_temp
as $$
    select (select count(*) from sync_queue where status = 'pending' and available_at <= p_at),
           (select max(id) from sync_queue where status = 'pending' and available_at <= p_at),
           (select count(*) from sync_queue where status = 'processing' and locked_until < p_at)
$$;

-- The drain path's tick (sensor, processor, break-glass command): move every status change the
-- inbox holds (21_sources.sql), so what it says is due includes every status change committed so
-- far; mark what the clock changed and the re-check notes whose time has come (22_clock.sql);
-- then say what is due.
create function website_sync_tick(p_at timestamptz default now())
returns table (clock_marked integer, due_count bigint, max_due_id bigint, expired_leases bigint)
language plpgsql
set search_path = public, pg_temp
as $$
declare
    batch constant integer := 10000;
    marked integer;
begin
    -- Batch after batch while they come full: what piled up while no tick ran, never chasing
    -- the app's live traffic (what arrives meanwhile is the next tick's).
    loop
        exit when move_status_changes(batch, p_wait => true) < batch;
    end loop;
    marked := enqueue_certification_clock(p_at) + recheck_website_sync(p_at);
    return query select marked, d.due_count, d.max_due_id, d.expired_leases from sync_queue_due(p_at) d;
end
$$;

-- What a drain left undone, for the break-glass commands' exit codes (the rules that turn this
-- into an exit code live in mentor_pipeline/cli/leftover.py). With p_up_to_id, a command's start:
-- the rows counted are those waiting then (id <= p_up_to_id) and the command's own (p_also_ids);
-- the waiting rows that arrived after it are counted apart.
--   due_untried     pending rows due now that were never tried (new, or released untouched)
--   retry_pending   the other pending rows: tried and failed, or waiting for their backoff; next_retry_at: the first
--   leased          rows a live processor holds (lease not run out); leased_until: its last lease
--   expired_leases  rows whose processor died holding them
--   dead_since      rows that went dead since p_since (whenever they arrived)
--   arrived         waiting rows that arrived after the start (the next drain's)
create function sync_queue_left(p_since timestamptz, p_at timestamptz default now(), p_up_to_id bigint default null,
                                p_also_ids bigint[] default '{}')
returns table (due_untried bigint, retry_pending bigint, next_retry_at timestamptz, leased bigint,
               leased_until timestamptz, expired_leases bigint, dead_since bigint, arrived bigint)
language sql
stable
set search_path = public, pg_temp
as $$
    select count(*) filter (where at_start and status = 'pending' and available_at <= p_at and attempts = 0),
           count(*) filter (where at_start and status = 'pending' and (attempts > 0 or available_at > p_at)),
           min(available_at) filter (where at_start and status = 'pending' and (attempts > 0 or available_at > p_at)),
           count(*) filter (where at_start and status = 'processing' and locked_until >= p_at),
           max(locked_until) filter (where at_start and status = 'processing' and locked_until >= p_at),
           count(*) filter (where at_start and status = 'processing' and locked_until < p_at),
           count(*) filter (where status = 'dead' and processed_at >= p_since),
           count(*) filter (where not at_start and sync_change_waiting(status))
      from (select q.status, q.available_at, q.attempts, q.locked_until, q.processed_at,
                   p_up_to_id is null or q.id <= p_up_to_id or q.id = any (p_also_ids) as at_start
              from sync_queue q
             where sync_change_waiting(q.status)
                or (q.status = 'dead' and q.processed_at >= p_since)) s
$$;

-- ---------------------------------------------------------------------------------------------
-- Row Level Security and privileges: the app roles see and run none of this.

alter table website_listing_state enable row level security;
alter table sync_queue_archive enable row level security;
revoke all on website_listing_state, sync_queue_archive from anon, authenticated;
revoke execute on function
    claim_sync_batch(integer, interval, uuid, timestamptz),
    extend_sync_lease(uuid, interval, timestamptz),
    record_sync_outcomes(uuid, jsonb, integer, interval, interval, timestamptz),
    archive_sync_queue(interval, interval, integer, timestamptz),
    sync_queue_due(timestamptz),
    website_sync_tick(timestamptz),
    sync_queue_left(timestamptz, timestamptz, bigint, bigint[])
from public, anon, authenticated;
-- ---------------------------------------------------------------------------------------------
-- Liveness of the runs that hold the Dynamics budget, and the budget's 429 hold: state every
-- process of the pipeline sees, so a restart of any of them costs seconds, not a timeout.

-- A heartbeat per Dagster run that holds the Dynamics budget, beaten every few seconds by the
-- run's own process (mentor_pipeline/operations/liveness.py). A run Dagster still calls STARTED
-- whose heartbeat went silent has lost its worker (a killed daemon or code server, an OOM kill,
-- a host restart): dead_run_sensor fails it, which frees the budget for the next drain, and
-- the changes it held come back when their leases end.
create table run_heartbeats (
    run_id text primary key,
    job_name text not null,
    started_at timestamptz not null default now(),
    beat_at timestamptz not null default now(),
    -- Where the worker ran, for the failure message ("last heard from host:pid").
    worker text not null
);

create function beat_run_heartbeat(p_run_id text, p_job_name text, p_worker text, p_at timestamptz default now())
returns void
language sql
as $$
    insert into public.run_heartbeats as h (run_id, job_name, started_at, beat_at, worker)
    values (p_run_id, p_job_name, p_at, p_at, p_worker)
    on conflict (run_id) do update set beat_at = greatest(h.beat_at, excluded.beat_at), worker = excluded.worker
$$;

-- The runs among p_run_ids whose last beat is older than p_silent_for at p_at, with that beat.
-- A run that never beat is not listed: the caller knows when it started.
create function silent_runs(p_run_ids text[], p_silent_for interval, p_at timestamptz default now())
returns table (run_id text, beat_at timestamptz, worker text)
language sql
stable
as $$
    select h.run_id, h.beat_at, h.worker
      from public.run_heartbeats h
     where h.run_id = any (p_run_ids) and h.beat_at < p_at - p_silent_for
$$;

-- A run that ended (cleanly, or failed by the sensor) beats no more.
create function end_run_heartbeat(p_run_id text)
returns void
language sql
as $$
    delete from public.run_heartbeats where run_id = p_run_id
$$;

-- Dataverse's service-protection limits are per application user, and a 429's Retry-After holds
-- every request of that user until it ends. The hold lives here, not only in the memory of the
-- process that received it, so a run started after that process died, a break-glass command
-- and a reconciliation all wait it out (mentor_pipeline/operations/throttle_hold.py).
create table dynamics_throttle_holds (
    -- The application user: the org URL and the client id (neither is a secret).
    budget text primary key,
    hold_until timestamptz not null,
    retry_after_seconds double precision not null,
    what text not null,
    recorded_at timestamptz not null default now()
);

-- A 429 with Retry-After p_seconds at p_at: nothing of that user is sent before it has passed.
-- A later deadline wins; an earlier one changes nothing.
create function record_dynamics_hold(p_budget text, p_seconds double precision, p_what text,
                                     p_at timestamptz default now())
returns timestamptz
language sql
as $$
    insert into public.dynamics_throttle_holds as t (budget, hold_until, retry_after_seconds, what, recorded_at)
    values (p_budget, p_at + make_interval(secs => p_seconds), p_seconds, p_what, p_at)
    on conflict (budget) do update
        set hold_until = excluded.hold_until, retry_after_seconds = excluded.retry_after_seconds,
            what = excluded.what, recorded_at = excluded.recorded_at
        where excluded.hold_until > t.hold_until
    returning hold_until
$$;

-- Seconds left of the user's hold at p_at (no row when none), with what was throttled and the
-- deadline (a process knows the deadlines it recorded itself and holds them already).
create function dynamics_hold_left(p_budget text, p_at timestamptz default now())
returns table (seconds double precision, what text, hold_until timestamptz)
language sql
stable
as $$
    select greatest(extract(epoch from t.hold_until - p_at)::double precision, 0), t.what, t.hold_until
      from public.dynamics_throttle_holds t
     where t.budget = p_budget and t.hold_until > p_at
$$;

alter table run_heartbeats enable row level security;
alter table dynamics_throttle_holds enable row level security;
revoke all on run_heartbeats, dynamics_throttle_holds from anon, authenticated;
revoke execute on function
    beat_run_heartbeat(text, text, text, timestamptz),
    silent_runs(text[], interval, timestamptz),
    end_run_heartbeat(text),
    record_dynamics_hold(text, double precision, text, timestamptz),
    dynamics_hold_left(text, timestamptz)
from public, anon, authenticated;
