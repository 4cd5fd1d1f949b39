-- The sources of change: the triggers on the app's tables that mark mentors in the outbox
-- (11_outbox.sql) through the one enqueue, in the same transaction as the change, and the one
-- definition of which mentor keys concern the website. After 20_queue.sql: that definition reads
-- the listing state the drain keeps.

-- Which mentor keys concern the website: the one definition every source of change asks. The
-- key itself when its mentor is in an organisation with website sync; with p_also_listed, also
-- when the website may still show the mentor (a listing the pipeline confirmed). The second form
-- is for the two changes that can take a mentor away from a syncing organisation (a move, a
-- deletion): the organisation the mentor is in now may have no website, yet the contact must be
-- unlisted. Every other change keeps the mentor where they are, and an organisation switched off
-- marked all its mentors itself. A set-returning SQL function, asked as
-- `exists (select from mentor_concerns_website(...))`: the planner inlines it into the asking
-- query, so the status trigger pays one index probe, as when it restated the test. (A boolean
-- SQL function that reads tables is not inlined: planned anew on every status change.)
create function mentor_concerns_website(p_mentor_id uuid, p_organization_id uuid, p_also_listed boolean default false)
returns table (mentor_id uuid)
language sql
stable
rows 1
as $$
    select p_mentor_id
     where exists (select from public.organizations o where o.id = p_organization_id and o.website_sync_enabled)
        or (p_also_listed and exists (select from public.website_listing_state w where w.mentor_id = p_mentor_id))
$$;

-- Status changes: the app's transaction appends the change to mentor_status_inbox (11_outbox.sql)
-- and nothing else, so a status change costs the app one write; the drain path's tick moves it
-- (move_status_changes, below). SECURITY DEFINER with a pinned search_path: the app updates
-- statuses as Supabase's `authenticated` role, which cannot touch the pipeline's tables, yet the
-- change must be recorded in the same transaction. Callers mark their updates with
-- `set local mentor_pipeline.triggered_by_event = '...'` (default 'status_change'); sync_event
-- refuses an unknown or forged event (the statement fails, nothing changes).
create function enqueue_website_sync()
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

create trigger mentors_enqueue_website_sync
after update of status on mentors
for each row
when (old.status is distinct from new.status)
execute function enqueue_website_sync();

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

-- A mentor moved to another chapter or organisation: the page groups by chapter, and the
-- organisation decides whether the mentor is listed at all.
create function enqueue_mentor_move()
returns trigger
language plpgsql
security definer
set search_path = public, pg_temp
as $$
begin
    if exists (select from mentor_concerns_website(new.id, old.organization_id, true))
       or exists (select from mentor_concerns_website(new.id, new.organization_id)) then
        perform queue_website_sync(array[new.id], sync_event('chapter_change'));
    end if;
    return null;
end
$$;

create trigger mentors_enqueue_move
after update of chapter_id, organization_id on mentors
for each row
when (old.chapter_id is distinct from new.chapter_id or old.organization_id is distinct from new.organization_id)
execute function enqueue_mentor_move();

-- A deleted mentor: the key stays in the outbox and the contact is unlisted (never deleted).
create function enqueue_mentor_deletion()
returns trigger
language plpgsql
security definer
set search_path = public, pg_temp
as $$
begin
    perform queue_website_sync(array(
        select g.id from gone g where exists (select from mentor_concerns_website(g.id, g.organization_id, true))),
        sync_event('mentor_deleted'), 'remove');
    return null;
end
$$;

create trigger mentors_enqueue_deletion
after delete on mentors
referencing old table as gone
for each statement
execute function enqueue_mentor_deletion();

-- Certifications inserted, edited or deleted: one statement-level trigger per kind (transition
-- tables), one enqueue per statement whatever its size.
create function enqueue_certification_change()
returns trigger
language plpgsql
security definer
set search_path = public, pg_temp
as $$
declare
    changed uuid[];
begin
    if tg_op = 'INSERT' then
        select array_agg(distinct n.mentor_id) into changed from new_rows n;
    elsif tg_op = 'DELETE' then
        select array_agg(distinct o.mentor_id) into changed from old_rows o;
    else
        select array_agg(distinct x.mentor_id) into changed
          from (select mentor_id from new_rows union all select mentor_id from old_rows) x;
    end if;
    -- Mentors of organisations with website sync; a mentor deleted with its certifications
    -- (cascade) was marked by the deletion trigger already.
    perform queue_website_sync(array(
        select m.id from mentors m
         where m.id = any (changed) and exists (select from mentor_concerns_website(m.id, m.organization_id))),
        sync_event('certification_change'));
    return null;
end
$$;

create trigger certifications_enqueue_insert
after insert on certifications
referencing new table as new_rows
for each statement
execute function enqueue_certification_change();

create trigger certifications_enqueue_update
after update on certifications
referencing old table as old_rows new table as new_rows
for each statement
execute function enqueue_certification_change();

create trigger certifications_enqueue_delete
after delete on certifications
referencing old table as old_rows
for each statement
execute function enqueue_certification_change();

-- An organisation's website sync switched on or off: all its mentors, in one statement.
create function enqueue_organization_change()
returns trigger
language plpgsql
security definer
set search_path = public, pg_temp
as $$
declare
    keys uuid[] := array(select m.id from mentors m where m.organization_id = new.id);
    event text := sync_event('organization_change');
begin
    perform queue_website_sync(keys, event);
    if new.website_sync_enabled then
        insert into website_sync_rechecks (event, mentor_ids, organization_id) values (event, keys, new.id);
    end if;
    return null;
end
$$;

create trigger organizations_enqueue_sync_toggle
after update of website_sync_enabled on organizations
for each row
when (old.website_sync_enabled is distinct from new.website_sync_enabled)
execute function enqueue_organization_change();

-- A chapter renamed: its listed mentors show under the new name.
create function enqueue_chapter_rename()
returns trigger
language plpgsql
security definer
set search_path = public, pg_temp
as $$
begin
    perform queue_website_sync(array(
        select m.id from mentors m
         where m.chapter_id = new.id and exists (select from mentor_concerns_website(m.id, m.organization_id))),
        sync_event('chapter_change'));
    return null;
end
$$;

create trigger chapters_enqueue_rename
after update of name on chapters
for each row
when (old.name is distinct from new.name)
execute function enqueue_chapter_rename();

-- ---------------------------------------------------------------------------------------------
-- Privileges: the triggers run as their owner (SECURITY DEFINER); nobody calls these directly.

revoke execute on function
    mentor_concerns_website(uuid, uuid, boolean),
    enqueue_website_sync(),
    move_status_changes(integer, boolean),
    enqueue_mentor_move(),
    enqueue_mentor_deletion(),
    enqueue_certification_change(),
    enqueue_organization_change(),
    enqueue_chapter_rename()
from public, anon, authenticated;
