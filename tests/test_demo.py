"""The pieces of `bin/demo` that a newcomer trips over first: restarting on the same ports, the
runtime folder of the embedded server, the demo's secret, and its Dagster instance and workspace.
(The demo as a whole was checked by running it; see README.md.)"""

from __future__ import annotations

import os
import socket
import stat
import uuid
import warnings

import dagster as dg
import pytest
import yaml

from mentor_pipeline.db import connection
from mentor_pipeline.demo import processes
from mentor_pipeline.demo import stack as demo
from mentor_pipeline.demo.instance import ensure_database, write_instance_yaml, write_workspace_yaml
from tests.support.db import drop_database


def _lingering_server_port() -> int:
    """A port whose server just stopped, closing first: its side of the connection lingers
    (FIN_WAIT/TIME_WAIT) as after Ctrl-C on the demo with a browser tab open. SO_REUSEADDR as
    uvicorn sets it: Linux lets a new bind past lingering sockets only when both sides set it."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = listener.accept()
    accepted.close()  # the server closes first
    listener.close()
    client.close()
    return port


def test_a_port_the_demo_just_left_counts_as_free():
    port = _lingering_server_port()
    with socket.socket() as plain:  # what the old probe did: it fails here
        with pytest.raises(OSError):
            plain.bind(("127.0.0.1", port))
    assert processes.port_is_free(port)


def test_a_port_someone_listens_on_is_taken():
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert not processes.port_is_free(server.getsockname()[1])


def test_without_a_login_session_the_embedded_server_gets_a_private_runtime_dir(tmp_path, monkeypatch):
    import platformdirs

    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setattr(connection.tempfile, "gettempdir", lambda: str(tmp_path))
    connection._ensure_runtime_dir()

    runtime = tmp_path / f"runtime-{os.geteuid()}"
    assert os.environ["XDG_RUNTIME_DIR"] == str(runtime)
    assert stat.S_IMODE(runtime.stat().st_mode) == 0o700
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # platformdirs' "XDG_RUNTIME_DIR is not set" would raise
        assert platformdirs.user_runtime_path("python_PostgresServer").parent == runtime


def test_a_runtime_dir_the_session_provides_is_left_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.setattr(connection.tempfile, "gettempdir", lambda: str(tmp_path / "elsewhere"))
    connection._ensure_runtime_dir()
    assert os.environ["XDG_RUNTIME_DIR"] == str(tmp_path)
    assert not (tmp_path / "elsewhere").exists()


def test_the_demo_secret_is_made_once_and_readable_by_its_owner_only(tmp_path):
    path = tmp_path / demo.SECRET_FILE
    first = demo.demo_client_secret(path)
    assert len(first) >= 24
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert demo.demo_client_secret(path) == first  # a restart keeps it


def test_break_glass_lines_read_the_secret_from_its_file_and_never_print_it(tmp_path, capsys):
    path = tmp_path / demo.SECRET_FILE
    secret = demo.demo_client_secret(path)
    env = {"DATABASE_URL": "postgresql://postgres:@/postgres?host=/x/.pgdata", "DYNAMICS_URL": "http://127.0.0.1:8765",
           "DYNAMICS_AUTHORITY": "http://127.0.0.1:8765", "DYNAMICS_TENANT_ID": demo.DEMO_TENANT,
           "DYNAMICS_CLIENT_ID": demo.DEMO_CLIENT_ID, "DYNAMICS_CLIENT_SECRET": secret}

    demo.print_break_glass(env, path, uses_embedded=True)
    out = capsys.readouterr().out
    assert secret not in out
    assert f'export DYNAMICS_CLIENT_SECRET="$(cat {path})"' in out
    assert "export DATABASE_URL='postgresql://postgres:@/postgres?host=/x/.pgdata'" in out
    assert "export DYNAMICS_TENANT_ID=hlf-demo-tenant" in out

    demo.print_break_glass({**env, "DATABASE_URL": "postgresql://u:hunter2@db/app"}, path, uses_embedded=False)
    assert "hunter2" not in capsys.readouterr().out


def test_the_demo_workspace_points_at_one_shared_code_server(tmp_path):
    path = write_workspace_yaml(tmp_path / "workspace.yaml", host="127.0.0.1", port=4321)
    assert yaml.safe_load(path.read_text()) == {
        "load_from": [{"grpc_server": {"host": "127.0.0.1", "port": 4321, "location_name": "mentor_pipeline"}}]
    }


def test_the_local_instance_queues_runs_and_shows_no_community_dialog(admin_url, tmp_path):
    name = f"dagster_instance_test_{uuid.uuid4().hex[:10]}"  # sessions sharing a server must not share it
    storage_url = ensure_database(admin_url, name)
    try:
        home = tmp_path / "dagster_home"
        write_instance_yaml(home, storage_url, queued=True)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            assert instance.nux_enabled is False
            assert isinstance(instance.run_coordinator, dg.QueuedRunCoordinator)
    finally:
        drop_database(admin_url, name)


def test_the_demo_goes_live_three_nights_back_and_keeps_that_night(tmp_path):
    from datetime import timedelta

    from mentor_pipeline.expiry.dates import today_in_oslo

    expected = (today_in_oslo() - timedelta(days=3)).isoformat()
    assert demo.demo_first_night(tmp_path) == expected
    (tmp_path / "first-night").write_text("2026-11-01\n")  # as if it first started a month ago
    assert demo.demo_first_night(tmp_path) == "2026-11-01"
