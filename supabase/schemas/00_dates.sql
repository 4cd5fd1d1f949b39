-- The Oslo calendar: what a run date and a certification's expiry date mean, for every rule that
-- counts days (the nightly expiry in 30_expiry.sql, the listing rule's reasons in 10_rule.sql,
-- the compensation query in 40_reconciliation.sql). First, because those rules call it.
--
-- Dates: a run is for one Oslo calendar date D (the "run date"). A certification is valid as
-- of D when it has not expired by the start of D in Oslo (00:00 Europe/Oslo); its expiry date
-- is the Oslo calendar date of expires_at; days_left = expiry date - D. A run is therefore a
-- function of the data and D, not of the wall clock, so re-running the same night later gives
-- the same answer.

-- The instant a run date starts in Oslo: what "as of the run date" means everywhere below.
create function expiry_run_start(p_run_date date)
returns timestamptz
language sql
immutable
parallel safe
as $$
    select (p_run_date::timestamp at time zone 'Europe/Oslo')
$$;

-- The Oslo calendar date of an instant (a certification's expiry date).
create function oslo_date(p_at timestamptz)
returns date
language sql
immutable
parallel safe
as $$
    select (p_at at time zone 'Europe/Oslo')::date
$$;

-- Valid as of a run date: not expired by the start of that date in Oslo.
create function certification_valid_as_of(p_expires_at timestamptz, p_run_date date)
returns boolean
language sql
immutable
parallel safe
as $$
    select p_expires_at > public.expiry_run_start(p_run_date)
$$;

-- Oslo calendar days from the run date to the expiry date (0: expires on the run date).
-- expires_at = 'infinity' (never expires) is valid; it has no Oslo calendar day to count to, so
-- its days left are unknown (null) instead of "cannot subtract infinite dates". Finite dates up
-- to year 294276 fit: the day count stays far inside integer. Still inlined (one CASE).
create function certification_days_left(p_expires_at timestamptz, p_run_date date)
returns integer
language sql
immutable
parallel safe
as $$
    select case when isfinite(p_expires_at) then public.oslo_date(p_expires_at) - p_run_date end
$$;

-- PUBLIC too: PostgreSQL grants EXECUTE to everyone on every new function, and Supabase's default
-- grants give the app roles every function created in public. The helpers are the pipeline's
-- business.
revoke execute on function
    expiry_run_start(date),
    oslo_date(timestamptz),
    certification_valid_as_of(timestamptz, date),
    certification_days_left(timestamptz, date)
from public, anon, authenticated;
