-- The drift watch (issue 24): Dynamics-side changes are put right in minutes. Adds the
-- 'dynamics_drift' event, the one comparison of a listing with the rule (listing_matches_rule),
-- read by the re-check notes, reconciliation_app_state (new column confirmed_matches: its
-- return type changes, so it is dropped and created again) and website_sync_status (which
-- compared the flag only), and the watch's own tables and function.
-- The current definitions: supabase/schemas/10_outbox.sql, 40_reconciliation.sql,
-- 60_coordinators.sql and 70_drift_watch.sql.

create or replace function sync_trigger_events()
returns text[]
language sql
immutable
as $$
    select array['status_change', 'manual_coordinator_action', 'nightly_expiry', 'reconciliation', 'force_sync',
                 'certification_change', 'certification_lapsed', 'mentor_deleted', 'organization_change',
                 'chapter_change', 'dynamics_drift']
$$;

create function listing_matches_rule(p_listed boolean, p_chapter text, p_should_be_listed boolean,
                                     p_rule_chapter text)
returns boolean
language sql
immutable
parallel safe
as $$
    select case when p_listed is not null
                then p_listed = p_should_be_listed
                     and (not p_should_be_listed or p_chapter is not distinct from p_rule_chapter) end
$$;

revoke execute on function listing_matches_rule(boolean, text, boolean, text) from public, anon, authenticated;

create or replace function recheck_website_sync(p_at timestamptz default now())
returns integer
language plpgsql
set search_path = public, pg_temp
as $$
declare
    note website_sync_rechecks;
    keys uuid[];
    marked integer := 0;
begin
    for note in select * from website_sync_rechecks order by id for update skip locked loop
        if note.waits_for is null then
            update website_sync_rechecks set waits_for = array(select pg_snapshot_xip(pg_current_snapshot()))
             where id = note.id;
        elsif not exists (select from unnest(note.waits_for) x where pg_xact_status(x) = 'in progress') then
            keys := array(select unnest(note.mentor_ids)
                          union
                          select m.id from mentors m where m.organization_id = note.organization_id);
            -- Only the keys a change may have raced: those Dynamics was last confirmed to show
            -- differently from the rule's answer now, and those with a write in flight (its rule
            -- read may predate the change). The keys whose write went out with the right answer
            -- (most of an organisation switched on) need no second write, and a key never written
            -- needs one only to be listed.
            keys := array(select d.mentor_id
                            from website_desired_listing(keys, p_at) d
                            left join website_listing_state s on s.mentor_id = d.mentor_id
                           where exists (select from sync_queue q where q.mentor_id = d.mentor_id and q.status = 'processing')
                              or case when s.mentor_id is null then d.should_be_listed
                                      else not listing_matches_rule(s.listed, s.chapter_name, d.should_be_listed,
                                                                    d.chapter_name)
                                 end);
            marked := marked + queue_website_sync(keys, note.event, null, p_at);
            delete from website_sync_rechecks where id = note.id;
        end if;
    end loop;
    return marked;
end
$$;

drop function reconciliation_app_state(uuid[], timestamptz);
create function reconciliation_app_state(p_mentor_ids uuid[] default null, p_at timestamptz default now())
returns table (mentor_id uuid, status text, should_be_listed boolean, chapter_name text,
               confirmed_listed boolean, in_queue boolean, confirmed_matches boolean)
language sql
stable
set search_path = public, pg_temp
as $$
    select d.mentor_id,
           d.status,
           d.should_be_listed,
           d.chapter_name,
           w.listed,
           exists (select 1 from sync_queue q
                    where q.mentor_id = d.mentor_id and sync_change_waiting(q.status)),
           listing_matches_rule(w.listed, w.chapter_name, d.should_be_listed, d.chapter_name)
      from website_listing_rule(p_at) d
      left join website_listing_state w on w.mentor_id = d.mentor_id
     where d.website_sync_enabled
       and (p_mentor_ids is null or d.mentor_id = any (p_mentor_ids))
$$;

revoke execute on function reconciliation_app_state(uuid[], timestamptz) from public, anon, authenticated;

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
        select q.operation, q.created_at
          from sync_queue q
         where q.mentor_id = target.id and sync_change_waiting(q.status)
         order by q.id desc
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

-- The change-tracking position per entity set: the token of the last delta link, or null (the
-- next look is a full read).
create table dynamics_change_tracking (
    entity_set text primary key,
    delta_token text,
    token_saved_at timestamptz,
    full_reads integer not null default 0,
    last_look_at timestamptz
);

-- Contact id -> mentor key, as the watch last saw them (full reads and deltas).
create table dynamics_contacts (
    contactid uuid primary key,
    mentor_id uuid not null,
    seen_at timestamptz not null default now()
);
create index dynamics_contacts_mentor on dynamics_contacts (mentor_id);

-- Every divergence a look found: which mentor and contact, which field (listed, chapter, or the
-- contact deleted), what Dynamics showed, what the rule says, and what the watch did:
--   queued         marked in sync_queue (dynamics_drift): the drain writes the rule's answer
--   left_to_queue  a change of the mentor is already queued or in flight: it writes the answer
--   fighting       corrected too often lately (something keeps changing it back): not written
--                  again; an incident names the contact and the field
create table dynamics_drift (
    id bigint generated always as identity primary key,
    look_id uuid not null,
    mentor_id uuid not null,
    contactid uuid,
    field text not null
        constraint dynamics_drift_field_check check (field in ('listed', 'chapter', 'deleted')),
    dynamics_listed boolean,
    dynamics_chapter text,
    should_be_listed boolean not null,
    rule_chapter text,
    action text not null
        constraint dynamics_drift_action_check check (action in ('queued', 'left_to_queue', 'fighting')),
    seen_at timestamptz not null
);
create index dynamics_drift_mentor on dynamics_drift (mentor_id, seen_at);

-- One page of a look: p_changed is a JSON array of {"contactid", "mentor_id", "listed",
-- "chapter"} (mentor keys that are not UUIDs are not the app's: skipped), p_deleted the contact
-- ids Dynamics reported deleted. Compares each key with the rule at p_at (listing_matches_rule),
-- marks the divergent ones (at most p_max_corrections times per key within p_window; after that
-- the key is 'fighting' and left alone), keeps website_listing_state honest about what Dynamics
-- shows (unless a write confirmed something after p_at, the moment the look began), and
-- returns the drift it logged.
create function mark_dynamics_drift(p_look_id uuid, p_changed jsonb, p_deleted uuid[], p_max_corrections integer,
                                    p_window interval, p_at timestamptz default now())
returns setof dynamics_drift
language plpgsql
set search_path = public, pg_temp
as $$
declare
    queued uuid[];
begin
    -- Scratch tables, dropped at commit: one call per transaction (the watch commits each page).
    create temporary table seen on commit drop as
    select x.contactid::uuid as contactid, x.mentor_id::uuid as mentor_id, coalesce(x.listed, false) as listed,
           x.chapter, false as deleted
      from jsonb_to_recordset(p_changed) as x(contactid text, mentor_id text, listed boolean, chapter text)
     where x.mentor_id ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';
    with gone as (
        delete from dynamics_contacts c where c.contactid = any (p_deleted) returning c.contactid, c.mentor_id
    )
    insert into seen select g.contactid, g.mentor_id, false, null, true from gone g;
    insert into dynamics_contacts as c (contactid, mentor_id, seen_at)
    select s.contactid, s.mentor_id, p_at from seen s where not s.deleted
    on conflict (contactid) do update set mentor_id = excluded.mentor_id, seen_at = excluded.seen_at;

    create temporary table found on commit drop as
    select s.mentor_id, s.contactid,
           case when s.deleted then 'deleted' when s.listed <> d.should_be_listed then 'listed' else 'chapter' end as field,
           case when not s.deleted then s.listed end as dynamics_listed,
           case when not s.deleted then s.chapter end as dynamics_chapter,
           d.should_be_listed, d.chapter_name as rule_chapter,
           case
               when exists (select from sync_queue q where q.mentor_id = s.mentor_id and sync_change_waiting(q.status))
                   then 'left_to_queue'
               when not s.deleted
                    and (select count(*) from dynamics_drift f
                          where f.mentor_id = s.mentor_id and f.action = 'queued'
                            and f.seen_at > p_at - p_window and f.seen_at <= p_at) >= p_max_corrections
                   then 'fighting'
               else 'queued'
           end as action
      from seen s
      join website_desired_listing(array(select mentor_id from seen), p_at) d on d.mentor_id = s.mentor_id
     where case when s.deleted then d.should_be_listed  -- a contact needed for a listing: the drain's dead row names it
                else not listing_matches_rule(s.listed, s.chapter, d.should_be_listed, d.chapter_name) end;

    -- What Dynamics shows is the known listing now, unless a write confirmed something newer.
    update website_listing_state w
       set listed = s.listed and not s.deleted,
           chapter_name = case when s.deleted then w.chapter_name else s.chapter end,
           last_synced_at = p_at, last_queue_id = null, updated_at = now()
      from seen s
     where w.mentor_id = s.mentor_id and w.last_synced_at < p_at
       and (w.listed is distinct from (s.listed and not s.deleted)
            or (not s.deleted and w.chapter_name is distinct from s.chapter));

    queued := array(select f.mentor_id from found f where f.action = 'queued');
    perform queue_website_sync(queued, 'dynamics_drift', null, p_at);
    return query
        insert into dynamics_drift (look_id, mentor_id, contactid, field, dynamics_listed, dynamics_chapter,
                                    should_be_listed, rule_chapter, action, seen_at)
        select p_look_id, f.mentor_id, f.contactid, f.field, f.dynamics_listed, f.dynamics_chapter,
               f.should_be_listed, f.rule_chapter, f.action, p_at
          from found f
        returning *;
end
$$;

alter table dynamics_change_tracking enable row level security;
alter table dynamics_contacts enable row level security;
alter table dynamics_drift enable row level security;
revoke all on dynamics_change_tracking, dynamics_contacts, dynamics_drift from anon, authenticated;
revoke all on sequence dynamics_drift_id_seq from anon, authenticated;
revoke execute on function mark_dynamics_drift(uuid, jsonb, uuid[], integer, interval, timestamptz)
from public, anon, authenticated;
