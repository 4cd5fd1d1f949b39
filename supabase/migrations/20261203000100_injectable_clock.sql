-- The clock migration (20261125000500_clock.sql) left out a few functions that decide by time:
-- here they take the moment too, on the same terms (old signatures dropped, not overloaded;
-- p_at last, defaulting to now()).

-- ---------------------------------------------------------------------------------------------
-- What a drain left undone (20261125000300_incidents.sql explains each count), at p_at: due,
-- waiting for a backoff and leased are all "as of p_at", so the break-glass exit codes follow
-- the moment the caller means.

drop function sync_queue_left(timestamptz);
create function sync_queue_left(p_since timestamptz, p_at timestamptz default now())
returns table (due_untried bigint, retry_pending bigint, next_retry_at timestamptz, leased bigint,
               leased_until timestamptz, expired_leases bigint, dead_since bigint)
language sql
stable
set search_path = public, pg_temp
as $$
    select count(*) filter (where status = 'pending' and available_at <= p_at and attempts = 0),
           count(*) filter (where status = 'pending' and (attempts > 0 or available_at > p_at)),
           min(available_at) filter (where status = 'pending' and (attempts > 0 or available_at > p_at)),
           count(*) filter (where status = 'processing' and locked_until >= p_at),
           max(locked_until) filter (where status = 'processing' and locked_until >= p_at),
           count(*) filter (where status = 'processing' and locked_until < p_at),
           count(*) filter (where status = 'dead' and processed_at >= p_since)
      from sync_queue
     where status in ('pending', 'processing')
        or (status = 'dead' and processed_at >= p_since)
$$;

-- ---------------------------------------------------------------------------------------------
-- Privileges: as before, the app roles run none of these.

revoke execute on function
    sync_queue_left(timestamptz, timestamptz)
from public, anon, authenticated;
