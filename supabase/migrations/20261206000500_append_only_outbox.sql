-- The outbox as an append-only log (issue 23): an app transaction never waits on, or deadlocks
-- with, another app transaction or a drain because of the pipeline's rows.
--
-- The outbox kept one pending row per mentor (a unique partial index) and every change upserted
-- it. A transaction that marked a mentor held that index entry until it committed, so two app
-- transactions that each changed the same two mentors in opposite order (renewals, bulk pauses,
-- a chapter rename or an organisation toggle, which mark many mentors in one statement)
-- deadlocked on rows of their own that never conflicted, and PostgreSQL cancelled one of them;
-- a claim holding a pending row made the app's upsert wait. Now every change appends its own
-- row with a plain INSERT, which waits on nothing, and the claim coalesces: it takes the newest
-- waiting row of each mentor and absorbs the others (superseded), so a mentor is still written
-- once per drain however many changes wait. At most one row per mentor is in flight (the unique
-- processing index, untouched): the guard that keeps two writes of one mentor from racing to
-- Dynamics now sits on the pipeline's side only.
-- Current bodies: supabase/schemas/10_outbox.sql, 20_queue.sql, 60_coordinators.sql.

drop index sync_queue_one_pending_per_mentor;
-- A mentor's waiting changes, for the claim that absorbs them and the per-mentor questions.
create index sync_queue_pending_mentor on sync_queue (mentor_id) where status = 'pending';

-- Same signature: CREATE OR REPLACE keeps the grants.
create or replace function queue_website_sync(p_mentor_ids uuid[], p_event text, p_operation text default null,
                                              p_at timestamptz default now())
returns integer
language plpgsql
as $$
declare
    marked integer;
begin
    if not p_event = any (public.sync_trigger_events()) then
        raise exception 'unknown triggered_by_event %: use one of %', quote_literal(p_event), public.sync_trigger_events()
            using errcode = 'check_violation';
    end if;
    if p_operation is null then
        -- The rule's answer for all the keys in one set-based read (an organisation toggle marks
        -- 100,000 at once).
        insert into public.sync_queue (mentor_id, operation, triggered_by_event, available_at)
        select d.mentor_id, case when d.should_be_listed then 'add' else 'remove' end, p_event, p_at
          from public.website_desired_listing(p_mentor_ids, p_at) d
         where d.mentor_id is not null;
    else
        -- The caller's operation (the status trigger, on every status change): a plain insert,
        -- no read of the rule.
        insert into public.sync_queue (mentor_id, operation, triggered_by_event, available_at)
        select distinct u.id, p_operation, p_event, p_at
          from unnest(p_mentor_ids) u(id)
         where u.id is not null;
    end if;
    get diagnostics marked = row_count;
    return marked;
end
$$;

create or replace function enqueue_website_sync()
returns trigger
language plpgsql
security definer
set search_path = public, pg_temp
as $$
declare
    event text := sync_event('status_change');
    wanted_operation text;
    warning_text text;
    enqueued_operation text;
begin
    if new.status in ('paused', 'expired_cert') then
        wanted_operation := 'remove';
    elsif new.status = 'active' and old.status in ('paused', 'expired_cert') then
        -- Reinstated: the status alone proves nothing; the most recent certification decides.
        if has_valid_certification(new.id) then
            wanted_operation := 'restore';
        else
            warning_text := 'reinstated without a valid certification: website listing not restored';
        end if;
    end if;

    if exists (select 1 from organizations o where o.id = new.organization_id and o.website_sync_enabled) then
        if wanted_operation is not null then
            if queue_website_sync(array[new.id], event, wanted_operation) > 0 then
                enqueued_operation := wanted_operation;
            end if;
        elsif warning_text is not null then
            -- A renewal committed meanwhile would have found the mentor still paused.
            insert into website_sync_rechecks (event, mentor_ids) values (event, array[new.id]);
        else
            -- Any other transition: the rule's answer (add or remove) for this mentor now, as the
            -- row just appended says.
            perform queue_website_sync(array[new.id], event);
            select q.operation into enqueued_operation
              from sync_queue q where q.mentor_id = new.id and q.status = 'pending'
             order by q.id desc
             limit 1;
        end if;
    end if;

    insert into mentor_status_audit (mentor_id, organization_id, old_status, new_status, triggered_by_event, sync_operation, warning)
    values (new.id, new.organization_id, old.status, new.status, event, enqueued_operation, warning_text);
    return null;
end
$$;

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
              from (select q.id, q.mentor_id
                      -- The keys joined: one probe of sync_queue_pending_mentor each. As
                      -- `mentor_id = any (mentor_keys)`, the planner read a whole pending index
                      -- searching the array per row.
                      from unnest(mentor_keys) k(mentor_id)
                      join sync_queue q on q.mentor_id = k.mentor_id
                     where q.status = 'pending'
                       and (q.available_at <= p_at or q.attempts > 0)
                       for update of q skip locked) w;
            select waiting_ids || coalesce(array_agg(w.id), '{}'), waiting_keys || coalesce(array_agg(w.mentor_id), '{}')
              into waiting_ids, waiting_keys
              from (select q.id, q.mentor_id
                      from unnest(mentor_keys) k(mentor_id)
                      join sync_queue q on q.mentor_id = k.mentor_id
                     where q.status = 'processing'
                       and q.locked_until < p_at
                       for update of q skip locked) w;
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
              from unnest(absorbed_ids) a(id)
             where q.id = a.id;

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
                 -- The ids joined, one probe of the primary key each: as `id = any (newest_ids)`
                 -- the planner read all of sync_queue searching the array per row.
                  from unnest(newest_ids) n(id)
                 where q.id = n.id
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

-- The coordinator button: a second request while a change waits returns that change (no second row).
create or replace function coordinator_enqueue(p_mentor_id uuid)
returns setof sync_queue
language plpgsql
set search_path = public, pg_temp
as $$
begin
    if not exists (select 1 from mentor_website_desired_state d
                    where d.mentor_id = p_mentor_id and d.website_sync_enabled) then
        return;
    end if;
    -- A change that waits untried and due is written at the next drain: asking again returns it.
    -- A retry waiting out its backoff gets a new row, due now, which the claim absorbs it into.
    if not exists (select 1 from sync_queue q
                    where q.mentor_id = p_mentor_id and q.status = 'pending' and q.attempts = 0
                      and q.available_at <= now()) then
        perform queue_website_sync(array[p_mentor_id], 'manual_coordinator_action');
    end if;
    return query select * from sync_queue q where q.mentor_id = p_mentor_id and q.status = 'pending'
                  order by q.id desc limit 1;
end
$$;
