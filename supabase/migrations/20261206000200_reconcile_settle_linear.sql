-- Reconciliation's app side in time linear in the mentors it is asked about (issue 23). After a
-- run that acted on N mentors, the settle step asks about those N: the old body filtered every
-- mentor with `p_mentor_ids is null or mentor_id = any (p_mentor_ids)` (a linear search of the
-- array per mentor: N x N), and its in_queue test (`status in ('pending', 'processing')`)
-- matched neither partial index of sync_queue, so it could scan the queue once per mentor.
-- Now the given keys are joined (one index probe per key), all mentors are read only when no
-- keys are given (a one-time filter on the parameter), and in_queue is one probe per partial
-- index: pending or processing, together the pair sync_change_waiting() names.
-- Same signature: CREATE OR REPLACE keeps the grants. Current body: supabase/schemas/40_reconciliation.sql.

create or replace function reconciliation_app_state(p_mentor_ids uuid[] default null, p_at timestamptz default now())
returns table (mentor_id uuid, status text, should_be_listed boolean, chapter_name text,
               confirmed_listed boolean, in_queue boolean)
language sql
stable
set search_path = public, pg_temp
as $$
    select d.mentor_id,
           d.status,
           d.should_be_listed,
           d.chapter_name,
           w.listed,
           exists (select 1 from sync_queue q where q.mentor_id = d.mentor_id and q.status = 'pending')
           or exists (select 1 from sync_queue q where q.mentor_id = d.mentor_id and q.status = 'processing')
      from (select r.* from website_listing_rule(p_at) r where p_mentor_ids is null
            union all
            select r.* from (select distinct unnest(p_mentor_ids) as id) k
              join website_listing_rule(p_at) r on r.mentor_id = k.id) d
      left join website_listing_state w on w.mentor_id = d.mentor_id
     where d.website_sync_enabled
$$;
