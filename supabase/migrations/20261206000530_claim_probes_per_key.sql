-- The claim probes a mentor's waiting rows per key whatever the statistics say (issue 23).
-- With sync_queue analyzed while nearly empty (before a burst: a first reconciliation queues
-- every mentor at once), the planner answered 20261206000500's join of the claimed keys with
-- sync_queue by reading the whole pending index once per key: each claim of a 20,000-mentor
-- re-sync took over a second, the drain quadratic in the queue (bench/bench_reconcile.py, auto_explain).
-- Now a LATERAL lookup per key, and the updates probe the primary key with an array whose size
-- the planner does not know, as the claim did before. Same signature: CREATE OR REPLACE keeps
-- the grants. Current body: supabase/schemas/20_queue.sql.

create or replace function claim_sync_batch(p_limit integer, p_lease interval, p_token uuid, p_at timestamptz default now())
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
