"""Nightly certification expiry: plain Python here (`run`, `store`, `dates`), Dagster in `definitions.py`."""
