-- The nightly expiry's most recent certification is the one in force on the night: issued by
-- 00:00 Oslo on the run date (the cut-off the buckets and validity use), or by p_at if that is
-- earlier. A night re-run later (a backfill) is then decided by what was in force that night, not
-- by a renewal recorded since. Reminders also need the certification to be the most recent still
-- at p_at, so a backfill never asks a coordinator for a renewal already made. The transition
-- keeps asking at p_at: a mentor renewed since the night must not be expired by a backfill.
-- Same signatures: CREATE OR REPLACE keeps the grants and the certification_state view.
-- The current bodies: supabase/schemas/30_expiry.sql.

create or replace function certification_state_as_of(p_run_date date, p_at timestamptz default now())
returns table (
    mentor_id uuid,
    organization_id uuid,
    chapter_id uuid,
    status text,
    certification_id uuid,
    certification_expires_at timestamptz,
    certification_expiry_date date,
    days_left integer,
    valid_as_of_run_date boolean,
    bucket text
)
language sql
stable
as $$
    select
        m.id,
        m.organization_id,
        m.chapter_id,
        m.status,
        l.certification_id,
        l.expires_at,
        oslo_date(l.expires_at),
        certification_days_left(l.expires_at, p_run_date),
        coalesce(certification_valid_as_of(l.expires_at, p_run_date), false),
        case
            when l.mentor_id is null then 'no_certification'
            when l.expires_at <= expiry_run_start(p_run_date) then 'expired'
            when l.expires_at < expiry_run_start(p_run_date + 7) then 'lt_7_days'
            when l.expires_at < expiry_run_start(p_run_date + 14) then 'lt_14_days'
            when l.expires_at < expiry_run_start(p_run_date + 30) then 'lt_30_days'
            else 'ok'
        end
    from mentors m
    left join latest_certifications(least(p_at, expiry_run_start(p_run_date))) l on l.mentor_id = m.id
$$;

create or replace function create_expiry_reminders(p_run_date date, p_sent_on date default null,
                                        p_at timestamptz default now())
returns table (organization_code text, threshold_day integer, reminders bigint, notifications bigint)
language plpgsql
set search_path = public, pg_temp
set plan_cache_mode = force_custom_plan
set work_mem = '64MB'
as $$
declare
    sent_on date := coalesce(p_sent_on, oslo_date(p_at));
    night timestamptz := least(p_at, expiry_run_start(p_run_date));
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
          -- The most recent at p_at and issued by the night: so also the most recent on the night.
          and c.issued_at <= night
          and c.id = (select l.certification_id from latest_certification(c.mentor_id, p_at) l)
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
