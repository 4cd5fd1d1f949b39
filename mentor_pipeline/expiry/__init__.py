"""Nightly certification expiry: plain Python here (`run`, `store`, `dates`), Dagster in `assets`, `jobs`, `schedules` and `definitions`."""
