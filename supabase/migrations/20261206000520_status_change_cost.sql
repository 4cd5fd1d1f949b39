-- What a status change costs the app (issue 23, bench/bench_outbox_trigger.py): the common case
-- takes the short paths.
-- * sync_event: with no event set by the caller (nearly every update) the default is the answer;
--   there is nothing to validate. Before, every call compared the default with both lists.
-- * queue_website_sync: one key with the caller's operation (the status trigger, on every status
--   change) is one INSERT ... VALUES, without the unnest and the sort of the set form.
-- Same signatures: CREATE OR REPLACE keeps the grants. Current bodies: supabase/schemas/10_outbox.sql.

create or replace function sync_event(p_default text)
returns text
language plpgsql
stable
-- No pinned search_path (names are qualified): the triggers call it on every status change, and a
-- SET clause costs a configuration save and restore per call.
as $$
declare
    event text := current_setting('mentor_pipeline.triggered_by_event', true);
begin
    if event is null or event = '' then
        return p_default;
    end if;
    if not event = any (public.sync_trigger_events()) then
        raise exception 'invalid mentor_pipeline.triggered_by_event %: use one of %', quote_literal(event),
            public.sync_trigger_events()
            using errcode = 'check_violation';
    end if;
    -- SECURITY DEFINER changes current_user, not the `role` setting that SET ROLE (PostgREST) made.
    if current_setting('role') in ('anon', 'authenticated') and event <> p_default
       and not event = any (public.sync_app_events()) then
        raise exception 'mentor_pipeline.triggered_by_event % is reserved for the pipeline: the app may mark % only',
            quote_literal(event), public.sync_app_events()
            using errcode = 'insufficient_privilege';
    end if;
    return event;
end
$$;

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
    elsif cardinality(p_mentor_ids) = 1 and p_mentor_ids[1] is not null then
        -- One key with the caller's operation (the status trigger, on every status change).
        insert into public.sync_queue (mentor_id, operation, triggered_by_event, available_at)
        values (p_mentor_ids[1], p_operation, p_event, p_at);
    else
        -- The caller's operation for a set of keys: no read of the rule.
        insert into public.sync_queue (mentor_id, operation, triggered_by_event, available_at)
        select distinct u.id, p_operation, p_event, p_at
          from unnest(p_mentor_ids) u(id)
         where u.id is not null;
    end if;
    get diagnostics marked = row_count;
    return marked;
end
$$;
