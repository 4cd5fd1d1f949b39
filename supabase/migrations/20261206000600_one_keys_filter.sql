-- One definition of "which mentor keys concern the website" (issue 25): six trigger bodies and
-- the clock each restated it, in two variants. They ask mentor_concerns_website now; its comment says
-- why a move and a deletion also take a mentor the website may still show. Behaviour unchanged.
-- Current bodies: supabase/schemas/10_outbox.sql.

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

create or replace function enqueue_mentor_move()
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

create or replace function enqueue_mentor_deletion()
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

create or replace function enqueue_certification_change()
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

create or replace function enqueue_chapter_rename()
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
         where m.status = 'active' and exists (select from public.mentor_concerns_website(m.id, m.organization_id))),
        'certification_lapsed', null, p_at);
end
$$;

revoke execute on function mentor_concerns_website(uuid, uuid, boolean) from public, anon, authenticated;
