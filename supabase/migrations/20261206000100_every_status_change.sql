-- Every status change reaches the website. The status trigger marked mentors only for the seeds'
-- three cases (paused, expired_cert, a reinstatement), so `active -> retired` kept a retired mentor
-- listed and `onboarding -> active` kept a certified one off the website until the nightly
-- reconciliation. The three cases stay as they were; every other transition asks the rule.

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
            -- Any other transition: the rule's answer (add or remove) for this mentor now.
            perform queue_website_sync(array[new.id], event);
            select q.operation into enqueued_operation
              from sync_queue q where q.mentor_id = new.id and q.status = 'pending';
        end if;
    end if;

    insert into mentor_status_audit (mentor_id, organization_id, old_status, new_status, triggered_by_event, sync_operation, warning)
    values (new.id, new.organization_id, old.status, new.status, event, enqueued_operation, warning_text);
    return null;
end
$$;

