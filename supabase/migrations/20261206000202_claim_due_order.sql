-- The claim in time independent of the finished rows and of stale statistics (issue 23):
-- * it picked the due rows in id order, which the planner reads from the primary key, from the
--   oldest row on, past every done, superseded and dead row still in sync_queue (a week of them
--   before the archive moves them): each claim of a drain re-read all the rows the drain had
--   finished (claims x rows). Due rows are now taken due the longest first (available_at, id):
--   the order of sync_queue_pending_due, which holds pending rows only, so the scan starts at
--   the first due row and stops at the limit;
-- * "no row of this mentor in flight" was a NOT EXISTS, which the planner may turn into an anti
--   join; with sync_queue analyzed while nearly empty (before a burst) it scanned the whole
--   processing index, dead entries of the rows the drain had finished included, once per due
--   row (a claim of a 100,000-row drain took seconds). Now the mentors in flight are read once
--   per claim into a hash (NOT IN: never turned into a join), whatever the statistics say;
-- * the update joined the claimed ids with sync_queue: under such statistics a scan of every row
--   of sync_queue against every claimed id (seconds per claim). The ids are now one array
--   probed in the primary key.
-- Same signature: CREATE OR REPLACE keeps the grants. Current body: supabase/schemas/20_queue.sql.

create or replace function claim_sync_batch(p_limit integer, p_lease interval, p_token uuid, p_at timestamptz default now())
returns setof sync_queue
language plpgsql
set search_path = public, pg_temp
as $$
declare
    tries integer := 0;
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

            with due as (
                select q.id
                  from sync_queue q
                 where q.status = 'pending'
                   and q.available_at <= p_at
                   -- one row per mentor in flight: a newer row waits for the current one. The
                   -- mentors in flight are read once into a hash (NOT IN over a NOT NULL key):
                   -- as a per-row NOT EXISTS, with sync_queue analyzed nearly empty, the planner
                   -- read a whole processing index (dead entries too) once per due row.
                   and q.mentor_id not in (select p.mentor_id from sync_queue p where p.status = 'processing')
                 -- Due the longest first, in sync_queue_pending_due's order: the scan starts at
                 -- the first due row. In id order it walked the primary key from the oldest
                 -- row, through every done row not yet archived, on every claim.
                 order by q.available_at, q.id
                 limit p_limit
                   for update skip locked
            ),
            lease_ran_out as (
                select q.id
                  from sync_queue q
                 where q.status = 'processing'
                   and q.locked_until < p_at
                 order by q.id
                 limit p_limit
                   for update skip locked
            ),
            c as (
                select id from due
                union all
                select id from lease_ran_out
                order by id
                limit p_limit
            ),
            updated as (
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
                 -- The ids as one array probed in the primary key. Joined with `c` instead, with
                 -- statistics from an empty queue, the planner scanned every row of sync_queue
                 -- against every claimed id.
                 where q.id = any (array(select c.id from c))
                returning q.*
            )
            select coalesce(array_agg(u order by u.id), '{}') into claimed from updated u;
            exit;
        exception when unique_violation then
            -- Another transaction put a row of one of these mentors in flight (or queued a
            -- newer pending row) between our snapshot and our update. Look again.
            tries := tries + 1;
            if tries >= 5 then
                raise;
            end if;
        end;
    end loop;
    return query select * from unnest(claimed);
end
$$;
