"""`mentor-pipeline emulator` runs standalone and its public page shows the listing."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import httpx

from tests.support.cli import cli_argv


def test_cli_serves_token_api_and_public_page(tmp_path):
    state = tmp_path / "state.json"
    process = subprocess.Popen(
        # Without Dagster importable: the emulator is a light command.
        cli_argv("emulator", "--port", "0", "--seed-contacts", "5", "--client-secret", "cli-secret",
                 "--request-limit", "100", "--state-file", str(state), missing=("dagster",)),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    try:
        banner = process.stdout.readline()
        assert banner.startswith("Dataverse emulator on http://127.0.0.1:"), banner
        url = banner.split()[3]
        for _ in range(100):
            try:
                page = httpx.get(url + "/")
                break
            except httpx.ConnectError:
                time.sleep(0.05)
        assert page.status_code == 200
        assert page.text.count("data-mentor-id=") == 5 and 'data-mentor-id="m000001"' in page.text
        state_info = httpx.get(url + "/_admin/state").json()
        assert state_info["limits"]["request_limit"] == 100
        token = httpx.post(f"{url}/{state_info['tenant_id']}/oauth2/v2.0/token", data={
            "client_id": state_info["client_id"], "client_secret": "cli-secret",
            "grant_type": "client_credentials", "scope": f"{url}/.default"})
        assert token.status_code == 200
    finally:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=10)
        process.stdout.close()
    assert '"hlf_mentorid": "m000005"' in state.read_text()  # saved on shutdown
