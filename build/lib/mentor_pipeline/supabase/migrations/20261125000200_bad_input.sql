-- Bad input (issue 12): whatever an organisation, the app or an operator writes, the pipeline
-- answers with a clear error or copes, loses nothing, and one organisation's mistake never
-- stops another organisation's night.

-- ---------------------------------------------------------------------------------------------
-- Reminder thresholds: whole days, 1 to 365, at most 10, each once

-- The column holds what the writer gave (numeric), so the check sees a fraction: an integer
-- column rounds array[30, 7.6] to {30,8} before any check can look at it. (A writer who casts
-- to integer himself, array[30, 7.6]::int[], has rounded before the value reaches the table.)
-- The old check depends on the column type, and the view on the column: both are rebuilt.
alter table expiry_threshold_config drop constraint expiry_threshold_config_valid;
drop view organization_expiry_thresholds;
drop function expiry_threshold_days_problem(integer[]);
alter table expiry_threshold_config alter column threshold_days type numeric[];

-- Why a list of thresholds is unacceptable, or null when it is fine: the one statement of the
-- rule, read by the save trigger (a readable error), the check constraint (any writer) and the
-- view below (rows saved before the rule, or behind its back, are skipped, never used).
create function expiry_threshold_days_problem(p_days numeric[])
returns text
language sql
immutable
parallel safe
as $$
    select case
        when p_days is null or cardinality(p_days) = 0 then
            'list at least one threshold (e.g. {30,14,7})'
        when array_ndims(p_days) <> 1 then
            'give one flat list of days (e.g. {30,14,7})'
        when array_position(p_days, null) is not null then
            'a threshold is empty (null)'
        when exists (select from unnest(p_days) d where d <> trunc(d)) then
            format('thresholds are whole days, got %s',
                   (select string_agg(d::text, ', ') from unnest(p_days) d where d <> trunc(d)))
        when exists (select from unnest(p_days) d where d <= 0) then
            format('thresholds are positive whole days, got %s',
                   (select string_agg(d::text, ', ') from unnest(p_days) d where d <= 0))
        -- A reminder more than a year ahead is a typo; and it keeps every date sum in range.
        when exists (select from unnest(p_days) d where d > 365) then
            format('thresholds are at most 365 days, got %s',
                   (select string_agg(d::text, ', ') from unnest(p_days) d where d > 365))
        when cardinality(p_days) > 10 then
            format('at most 10 thresholds, got %s', cardinality(p_days))
        when (select count(distinct d) from unnest(p_days) d) <> cardinality(p_days) then
            format('each threshold may appear once, %s is repeated',
                   (select string_agg(d::text, ', ') from (
                        select d from unnest(p_days) d group by d having count(*) > 1 order by d desc) dup))
    end
$$;

create or replace function validate_expiry_threshold_config()
returns trigger
language plpgsql
set search_path = public, pg_temp
as $$
declare
    problem text := expiry_threshold_days_problem(new.threshold_days);
    org_code text;
begin
    if problem is not null then
        select code into org_code from organizations where id = new.organization_id;
        raise exception 'invalid expiry thresholds % for organisation %: %',
            coalesce(new.threshold_days::text, 'null'), coalesce(org_code, new.organization_id::text), problem
            using errcode = 'check_violation',
                  hint = 'thresholds are whole days before expiry, 1 to 365, each listed once, at most 10; nothing was saved';
    end if;
    -- Stored largest first, so what a coordinator reads back is in reminder order.
    new.threshold_days := (select array_agg(d order by d desc) from unnest(new.threshold_days) d);
    new.updated_at := now();
    return new;
end
$$;

-- NOT VALID: a row saved under the old rule (say {400}) must not fail this migration. New
-- writes are checked at once; the night skips such a row (see the view) until it is fixed.
alter table expiry_threshold_config
    add constraint expiry_threshold_config_valid check (expiry_threshold_days_problem(threshold_days) is null) not valid;
do $$
begin
    if not exists (select from expiry_threshold_config where expiry_threshold_days_problem(threshold_days) is not null) then
        alter table expiry_threshold_config validate constraint expiry_threshold_config_valid;
    end if;
end
$$;

-- The thresholds in force per organisation (the only place the flag is interpreted).
-- threshold_problem: why the organisation's own list is not used tonight (it is invalid); its
-- threshold_days is then null, so it gets no reminders rather than wrong ones or a crash.
create view organization_expiry_thresholds with (security_invoker = true) as
select
    o.id as organization_id,
    o.code as organization_code,
    coalesce(c.threshold_overrides_enabled, false) as threshold_overrides_enabled,
    case when c.threshold_overrides_enabled is not true then expiry_default_threshold_days()
         when p.problem is null then c.threshold_days::integer[] end as threshold_days,
    p.problem as threshold_problem
from organizations o
left join expiry_threshold_config c on c.organization_id = o.id
cross join lateral (
    select case when c.threshold_overrides_enabled then expiry_threshold_days_problem(c.threshold_days) end as problem
) p;

revoke all on organization_expiry_thresholds from anon, authenticated;
revoke execute on function expiry_threshold_days_problem(numeric[]) from public, anon, authenticated;

-- ---------------------------------------------------------------------------------------------
-- Every certification date the column allows

-- expires_at = 'infinity' (never expires) is valid; it has no Oslo calendar day to count to, so
-- its days left are unknown (null) instead of "cannot subtract infinite dates". Finite dates up
-- to year 294276 fit: the day count stays far inside integer. Still inlined (one CASE).
create or replace function certification_days_left(p_expires_at timestamptz, p_run_date date)
returns integer
language sql
immutable
parallel safe
as $$
    select case when isfinite(p_expires_at) then oslo_date(p_expires_at) - p_run_date end
$$;

-- ---------------------------------------------------------------------------------------------
-- Reminders are never sent for a certification that has lapsed by the day they are sent

-- p_sent_on: the Oslo day the notifications go out, today unless the caller says otherwise.
-- For tonight's run it is the run date and nothing changes; a backfilled night (a run date in
-- the past) reminds only about certifications still valid today, and its message counts the
-- days from today, the day the coordinator reads it. Otherwise as before (the previous
-- definition in *_expiry.sql explains the statement).
drop function create_expiry_reminders(date);
create function create_expiry_reminders(p_run_date date, p_sent_on date default null)
returns table (organization_code text, threshold_day integer, reminders bigint, notifications bigint)
language plpgsql
set search_path = public, pg_temp
set plan_cache_mode = force_custom_plan
set work_mem = '64MB'
as $$
declare
    sent_on date := coalesce(p_sent_on, oslo_date(now()));
    -- Certifications must still be valid on both days: the night's and the sending day's.
    valid_from date;
    window_end timestamptz := expiry_run_start(p_run_date + 1 + (
        select coalesce(max(d), 0) from organization_expiry_thresholds t, unnest(t.threshold_days) d));
begin
    if sent_on < p_run_date then
        raise exception 'reminders for the night of % cannot be sent on %, before that night', p_run_date, sent_on
            using errcode = 'invalid_parameter_value';
    end if;
    valid_from := greatest(p_run_date, sent_on);

    perform pg_advisory_xact_lock(hashtext('mentor_pipeline.create_expiry_reminders'));

    return query
    with due as (
        select c.mentor_id, m.organization_id, c.id as certification_id,
               oslo_date(c.expires_at) as certification_expiry_date,
               certification_days_left(c.expires_at, p_run_date) as days_left,
               (select min(d) from unnest(t.threshold_days) d
                where d >= certification_days_left(c.expires_at, p_run_date)) as threshold_day
        from certifications c
        join mentors m on m.id = c.mentor_id
        join organization_expiry_thresholds t on t.organization_id = m.organization_id
        where certification_valid_as_of(c.expires_at, valid_from)
          and c.expires_at < window_end
          and c.id = (select l.certification_id from mentor_latest_certification l where l.mentor_id = c.mentor_id)
    ),
    reminded as (
        insert into cert_expiry_reminders (
            mentor_id, threshold_day, certification_expiry_date, certification_id, run_date, organization_id, days_left)
        select d.mentor_id, d.threshold_day, d.certification_expiry_date, d.certification_id, p_run_date,
               d.organization_id, d.days_left
        from due d
        where d.threshold_day is not null
        on conflict on constraint cert_expiry_reminders_once do nothing
        returning id, cert_expiry_reminders.mentor_id, cert_expiry_reminders.threshold_day,
                  cert_expiry_reminders.certification_expiry_date, cert_expiry_reminders.days_left,
                  cert_expiry_reminders.organization_id
    ),
    notified as (
        insert into coordinator_notifications (
            reminder_id, mentor_id, organization_id, chapter_id, threshold_day, certification_expiry_date, days_left, message)
        select r.id, r.mentor_id, r.organization_id, m.chapter_id, r.threshold_day, r.certification_expiry_date,
               r.days_left,
               format('%s''s certification expires %s (%s): %s-day reminder. Please arrange a renewal.',
                      m.full_name,
                      case r.certification_expiry_date - sent_on when 0 then 'today' when 1 then 'tomorrow'
                                       else format('in %s days', r.certification_expiry_date - sent_on) end,
                      to_char(r.certification_expiry_date, 'DD.MM.YYYY'),
                      r.threshold_day)
        from reminded r
        join mentors m on m.id = r.mentor_id
        on conflict do nothing
        returning coordinator_notifications.organization_id, coordinator_notifications.threshold_day
    ),
    reminder_counts as (
        select r.organization_id, r.threshold_day, count(*) as n from reminded r group by 1, 2
    ),
    notification_counts as (
        select n.organization_id, n.threshold_day, count(*) as n from notified n group by 1, 2
    )
    select o.code, rc.threshold_day, rc.n, coalesce(nc.n, 0)
    from reminder_counts rc
    join organizations o on o.id = rc.organization_id
    left join notification_counts nc on nc.organization_id = rc.organization_id and nc.threshold_day = rc.threshold_day
    order by o.code, rc.threshold_day desc;
end
$$;

revoke execute on function create_expiry_reminders(date, date) from public, anon, authenticated;

-- ---------------------------------------------------------------------------------------------
-- Privileges: under Supabase's default grants the app roles get everything on every sequence
-- and function created in public. They need none of the pipeline's: nextval/setval on
-- sync_queue_id_seq would let any signed-in user break every later status change, and the
-- helpers are the pipeline's business. (Tables and views are revoked where they are created.)
revoke all on sequence
    sync_queue_id_seq,
    mentor_status_audit_id_seq,
    cert_expiry_reminders_id_seq,
    certification_state_runs_id_seq,
    coordinator_notifications_id_seq,
    reconciliation_log_id_seq
from anon, authenticated;

-- PUBLIC too: PostgreSQL grants EXECUTE to everyone on every new function. The trigger runs them
-- as their owner (SECURITY DEFINER); the pipeline is the owner or service_role.
revoke execute on function
    has_valid_certification(uuid, timestamptz),
    sync_trigger_events(),
    expiry_run_start(date),
    oslo_date(timestamptz),
    certification_valid_as_of(timestamptz, date),
    certification_days_left(timestamptz, date),
    expiry_default_threshold_days()
from public, anon, authenticated;
