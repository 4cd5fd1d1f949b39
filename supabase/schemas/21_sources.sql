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

-- Status changes. The seeds' three cases: paused/expired_cert -> remove; a reinstatement (active
-- after paused/expired_cert) -> restore only when the most recent certification is valid now,
-- otherwise no write, a warning in the audit trail and a re-check note (22_clock.sql). Every other
-- transition (onboarding -> active, active -> retired, a status the app adds later) asks the rule,
-- as every other source of change does: the website follows the rule for every status value.
-- Mentors of organisations with website sync only. Every status change writes its audit row.
-- SECURITY DEFINER with a pinned search_path: the app updates statuses as Supabase's
-- `authenticated` role, which cannot touch sync_queue, yet the enqueue must still happen in the
-- same transaction. Callers mark their updates with
-- `set local mentor_pipeline.triggered_by_event = '...'` (default 'status_change').
create function enqueue_website_sync()
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

    if exists (select from mentor_concerns_website(new.id, new.organization_id)) then
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

create trigger mentors_enqueue_website_sync
after update of status on mentors
for each row
when (old.status is distinct from new.status)
execute function enqueue_website_sync();

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
    enqueue_mentor_move(),
    enqueue_mentor_deletion(),
    enqueue_certification_change(),
    enqueue_organization_change(),
    enqueue_chapter_rename()
from public, anon, authenticated;
