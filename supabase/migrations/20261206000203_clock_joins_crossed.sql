-- The clock tick reads the mentors whose certification crossed, not all mentors (issue 23): it
-- picked them with `m.id = any (crossed)`, which the planner answered with a sequential scan of
-- mentors searching the array for each one (mentors x crossings on every tick that found any,
-- 1,380 crossings on the catch-up after a day's outage). The keys are now joined.
-- Same signature: CREATE OR REPLACE keeps the grants. Current body: supabase/schemas/10_outbox.sql.

create or replace function enqueue_certification_clock(p_at timestamptz default now())
returns integer
language plpgsql
set search_path = public, pg_temp
as $$
declare
    since timestamptz;
    crossed uuid[];
begin
    -- One checker at a time; a concurrent caller skips (the other one covers the window).
    select checked_until into since from website_sync_clock for update skip locked;
    if not found or since >= p_at then
        return 0;
    end if;
    select array_agg(distinct c.mentor_id) into crossed
      from (select mentor_id from certifications where expires_at > since and expires_at <= p_at
            union all
            select mentor_id from certifications where issued_at > since and issued_at <= p_at) c;
    update website_sync_clock set checked_until = p_at;
    if crossed is null then
        return 0;
    end if;
    -- The crossed keys joined (one index probe each, or one hash), not `m.id = any (crossed)`,
    -- which the planner may answer with a scan of every mentor searching the array per row.
    return queue_website_sync(array(
        select m.id from unnest(crossed) c(id)
          join mentors m on m.id = c.id
          join organizations o on o.id = m.organization_id and o.website_sync_enabled
         where m.status = 'active'), 'certification_lapsed', null, p_at);
end
$$;
