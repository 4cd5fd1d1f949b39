-- The pipeline's index on the app's mentors held status, (organization_id, status), so no status
-- update could be a HOT update: each one wrote a new entry into every index of mentors, the app's
-- own included (bench/bench_outbox_trigger.py --index-cost). The per-organisation passes need the
-- organisation only; the status is a filter on rows they read anyway.
create index mentors_organization on mentors (organization_id);
drop index mentors_organization_status;
