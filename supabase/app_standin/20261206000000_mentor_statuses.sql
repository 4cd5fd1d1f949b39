-- The app's real status vocabulary: a mentor is onboarded, active, paused, out of certification
-- or retired. The first stand-in named only the three the seeds talk about.
alter table mentors drop constraint mentors_status_check;
alter table mentors add constraint mentors_status_check
    check (status in ('onboarding', 'active', 'paused', 'expired_cert', 'retired'));
