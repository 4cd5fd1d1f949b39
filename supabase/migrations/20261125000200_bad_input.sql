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
