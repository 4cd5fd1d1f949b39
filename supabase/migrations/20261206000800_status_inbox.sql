-- A status change costs the app one write (issue 23). The status trigger wrote the change's
-- sync_queue row and its audit row: two records, five index entries, an organisation probe and
-- two function calls on every status update of the app (0.64 of the one-insert floor). Now it
-- appends one row to an inbox that has only its primary key, and the drain path's tick (every
-- poll, every drain) moves the inbox in one statement: the audit rows, the website rows of the
-- organisations with website sync, the reinstatement warnings and re-check notes, decided as
-- the trigger decided them. The change is still recorded in the app's transaction (the inbox
-- row commits or rolls back with it); the audit and the queue row follow at the next tick.
-- Current bodies: supabase/schemas/11_outbox.sql (the inbox) and 21_sources.sql (the trigger
-- and the move), 20_queue.sql (the tick).

-- Every status change, as the app's transaction made it, until the tick moves it.
create table mentor_status_inbox (
    id bigint generated always as identity primary key,
    mentor_id uuid not null,
    organization_id uuid not null,
    old_status text not null,
    new_status text not null,
    triggered_by_event text not null,
    changed_at timestamptz not null default now()
);

alter table mentor_status_inbox enable row level security;
revoke all on mentor_status_inbox from anon, authenticated;
revoke all on sequence mentor_status_inbox_id_seq from anon, authenticated;

-- The status trigger: one plain insert. sync_event still refuses an unknown or forged event
-- (the statement fails, nothing changes).
create or replace function enqueue_website_sync()
returns trigger
language plpgsql
security definer
set search_path = public, pg_temp
as $$
begin
    insert into mentor_status_inbox (mentor_id, organization_id, old_status, new_status, triggered_by_event)
    values (new.id, new.organization_id, old.status, new.status, sync_event('status_change'));
    return null;
end
$$;

-- Moves the status changes the inbox holds into the audit trail and the outbox, oldest first,
-- at most p_limit (one call is a short transaction whatever piled up while no tick ran; the tick
-- calls it batch after batch); returns how many it moved. It decides what the trigger used to,
-- each change at its own time (changed_at): paused/expired_cert -> remove; a reinstatement
-- (active after paused/expired_cert) -> restore only when the most recent certification is
-- valid, otherwise no write, a warning in the audit and a re-check note (22_clock.sql); every
-- other transition asks the rule. Website rows for organisations with website sync only; every
-- change gets its audit row. The queue row counts from the change (created_at, available_at), so
-- freshness and lag include the wait for the tick.
-- One mover at a time. With p_wait the caller waits for a move in progress to commit (the tick:
-- what it then says is due includes every change committed before it); without it, a caller
-- that finds another mover at work moves nothing (a claim never waits). The app's inserts never
-- wait on a move, and a change still uncommitted stays for the next one.
create function move_status_changes(p_limit integer default 10000, p_wait boolean default false)
returns integer
language plpgsql
set search_path = public, pg_temp
as $$
declare
    moved integer;
begin
    if p_wait then
        perform pg_advisory_xact_lock(hashtext('mentor_pipeline.move_status_changes'));
    elsif not pg_try_advisory_xact_lock(hashtext('mentor_pipeline.move_status_changes')) then
        return 0;
    end if;
    with changes as (
        delete from mentor_status_inbox
         where id in (select i.id from mentor_status_inbox i order by i.id limit p_limit)
        returning *
    ),
    classified as (
        select c.*,
               exists (select from mentor_concerns_website(c.mentor_id, c.organization_id)) as concerns,
               case when c.new_status in ('paused', 'expired_cert') then 'remove'
                    when c.new_status = 'active' and c.old_status in ('paused', 'expired_cert') then 'reinstated'
               end as kind
          from changes c
    ),
    -- Every other transition: the rule's answer, one read per app transaction (its changed_at).
    ruled as (
        select d.mentor_id, t.changed_at, case when d.should_be_listed then 'add' else 'remove' end as operation
          from (select changed_at, array_agg(distinct mentor_id) as ids
                  from classified
                 where concerns and kind is null
                 group by changed_at) t
         cross join lateral website_desired_listing(t.ids, t.changed_at) d
    ),
    decided as (
        select c.*,
               case when c.kind = 'remove' then 'remove'
                    when c.kind = 'reinstated' then
                        case when has_valid_certification(c.mentor_id, c.changed_at) then 'restore' end
                    else r.operation
               end as operation
          from classified c
          left join ruled r on r.mentor_id = c.mentor_id and r.changed_at = c.changed_at and c.kind is null
    ),
    queued as (
        insert into sync_queue (mentor_id, operation, triggered_by_event, available_at, created_at)
        select d.mentor_id, d.operation, d.triggered_by_event, d.changed_at, d.changed_at
          from decided d
         where d.concerns and d.operation is not null
         order by d.id
    ),
    -- A renewal committed while the reinstatement was uncommitted may have found the mentor
    -- still paused.
    noted as (
        insert into website_sync_rechecks (event, mentor_ids)
        select d.triggered_by_event, array[d.mentor_id]
          from decided d
         where d.concerns and d.kind = 'reinstated' and d.operation is null
         order by d.id
    )
    insert into mentor_status_audit (mentor_id, organization_id, old_status, new_status, triggered_by_event,
                                     sync_operation, warning, changed_at)
    select d.mentor_id, d.organization_id, d.old_status, d.new_status, d.triggered_by_event,
           case when d.concerns then d.operation end,
           case when d.kind = 'reinstated' and d.operation is null
                then 'reinstated without a valid certification: website listing not restored' end,
           d.changed_at
      from decided d
     order by d.id;
    get diagnostics moved = row_count;
    return moved;
end
$$;

-- The drain path's tick moves the inbox first, so what it says is due includes every status
-- change committed so far.
create or replace function website_sync_tick(p_at timestamptz default now())
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

-- The claim moves them first too: a claim takes every status change the app has committed.
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

-- The coordinator's status RPC counts a status change still in the inbox as a change waiting.
create or replace function website_sync_status(mentor_id uuid)
returns table (wanted_listed boolean, confirmed_listed boolean, confirmed_at timestamptz,
               change_waiting boolean, waiting_operation text, waiting_since timestamptz,
               public_page_by timestamptz, state text)
language plpgsql
stable
security definer
set search_path = public, pg_temp
as $$
#variable_conflict use_column
declare
    target mentors := coordinated_mentor(website_sync_status.mentor_id);
begin
    return query
    with wanted as (
        select d.should_be_listed, d.chapter_name from mentor_website_desired_state d
         where d.mentor_id = target.id and d.website_sync_enabled
    ),
    waiting as (
        -- One probe per partial index (pending, processing: sync_change_waiting's pair), which
        -- the pair as one test matches neither of: it read all of sync_queue per call.
        select w.operation, w.created_at
          from (select false as in_inbox, q.id, q.operation, q.created_at from sync_queue q
                 where q.mentor_id = target.id and q.status = 'pending'
                union all
                select false, q.id, q.operation, q.created_at from sync_queue q
                 where q.mentor_id = target.id and q.status = 'processing'
                union all
                -- A status change the tick has not moved yet (seconds; its operation is decided
                -- then): newer than any queue row. The inbox holds seconds of changes: no index.
                select true, i.id, null, i.changed_at from mentor_status_inbox i
                 where i.mentor_id = target.id) w
         order by w.in_inbox desc, w.id desc
         limit 1
    ),
    confirmed as (
        select w.listed, w.chapter_name, w.last_synced_at from website_listing_state w where w.mentor_id = target.id
    )
    select (select should_be_listed from wanted),
           c.listed,
           c.last_synced_at,
           exists (select 1 from waiting),
           (select operation from waiting),
           (select created_at from waiting),
           case when not exists (select 1 from waiting) then c.last_synced_at + portal_cache_delay() end,
           case
               when not exists (select 1 from wanted) then 'website_off'
               when exists (select 1 from waiting) then 'waiting'
               when c.listed is null then 'never_synced'
               when (select listing_matches_rule(c.listed, c.chapter_name, w.should_be_listed, w.chapter_name)
                       from wanted w) then 'in_sync'
               else 'differs'
           end
      from (select 1) one
      left join confirmed c on true;
end
$$;

revoke execute on function move_status_changes(integer, boolean) from public, anon, authenticated;
