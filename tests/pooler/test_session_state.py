"""Every connection of the pipeline works through a transaction pooler: nothing it does relies on
state kept in a server session, because the next transaction may run on another one."""

from __future__ import annotations

import psycopg
import pytest

from mentor_pipeline.db.connection import connect


def run_same_query(conn: psycopg.Connection, times: int) -> None:
    for value in range(times):
        conn.execute("select %s::int", (value,)).fetchone()


def test_the_pooler_hands_one_server_connection_to_clients_in_turn(pooled_db_url):
    # The premise of this folder: a prepared statement outlives its client on the server, so the
    # next client there collides with it. psycopg's own default (prepare after 5 runs) fails.
    with psycopg.connect(pooled_db_url, autocommit=True) as first:
        run_same_query(first, 6)
    with psycopg.connect(pooled_db_url, autocommit=True) as second:
        with pytest.raises(psycopg.errors.DuplicatePreparedStatement):
            run_same_query(second, 6)


@pytest.mark.parametrize("autocommit", [True, False])
def test_the_pipelines_connections_prepare_nothing(pooled_db_url, autocommit):
    for _ in range(3):  # three clients in turn on the same server connection
        with connect(autocommit=autocommit) as conn:
            run_same_query(conn, 20)
            if not autocommit:
                conn.commit()
            assert conn.execute("select count(*) from pg_prepared_statements").fetchone() == (0,)
