"""The one place that decides which PostgreSQL server the pipeline talks to."""

from mentor_pipeline.db.connection import DatabaseError, connect, database_url, stop_embedded_server

__all__ = ["DatabaseError", "connect", "database_url", "stop_embedded_server"]
