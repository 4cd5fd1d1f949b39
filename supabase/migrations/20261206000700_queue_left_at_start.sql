-- The break-glass commands' "what was due when I started" is counted in SQL (issue 25): the
-- command's Python restated sync_queue_left's categories for the rows that arrived after its start
-- and subtracted them. Now sync_queue_left takes the start (the newest row id then, and the
-- command's own rows) and counts the arrivals apart: the categories are written once.
-- Current body: supabase/schemas/20_queue.sql.

drop function sync_queue_left(timestamptz, timestamptz);

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

revoke execute on function sync_queue_left(timestamptz, timestamptz, bigint, bigint[]) from public, anon, authenticated;
