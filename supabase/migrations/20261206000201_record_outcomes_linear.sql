-- The burst drain's regression (issue 23): record_sync_outcomes joined the batch's results
-- (jsonb_to_recordset, estimated at 100 rows) with the rows held under the token (estimated at
-- about 1), and the planner put the function scan on the inner side of a nested loop: every
-- batch of 1,000 outcomes re-read the 1,000 results 1,000 times (a million comparisons, 0.2-0.4 s
-- per batch, most of the 10,000-change burst's database time). Each held row now looks its
-- result up by id in a JSON object: no join left for the planner to get wrong. And "a newer row
-- is pending" is asked only for outcomes that can go back to pending: under statistics that
-- said the queue was empty, its per-row probe read a whole pending index once per row. The
-- update likewise looks each row's decision up by id instead of joining the decisions: under
-- such statistics the join scanned all of sync_queue once per decision (a first reconciliation
-- of 100,000 mentors: 30-50 s per batch of 1,000).
-- Same signature: CREATE OR REPLACE keeps the grants. Current body: supabase/schemas/20_queue.sql.

create or replace function record_sync_outcomes(
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
