"""The drift watch: what changed in Dynamics behind the pipeline's back, read through Dataverse's
change tracking every few minutes, compared with the one rule, and put right by the drain
(docs/operations.md, *The drift watch*; SQL: supabase/schemas/70_drift_watch.sql)."""
