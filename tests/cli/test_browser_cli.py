"""`pingjia simulate` for browser integrators, as a subprocess: `--allow-origin`, HTTPS
from the settings' api.tls_cert/tls_key, and `pingjia status`/`invite`/`visit` against
it with `--cacert`."""
from __future__ import annotations

import json
import os
import subprocess

import requests

from tests.cli.test_simulate import COMMAND, TOKEN, Sim
from tests.terminal.tlskit import make_pki

ORIGIN = "http://127.0.0.1:8080"


def cli(*argv: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PINGJIA_CONFIG"}
    return subprocess.run([*COMMAND, *argv], capture_output=True, text=True, timeout=60, env=env)


def test_the_simulator_serves_browsers_over_https_and_the_cli_follows(tmp_path, monkeypatch):
    pki = make_pki(tmp_path / "pki")
    settings = tmp_path / "pingjia.toml"
    settings.write_text(f'[api]\ntls_cert = "{pki.cert}"\ntls_key = "{pki.key}"\n', encoding="utf-8")
    monkeypatch.setenv("PINGJIA_CONFIG", str(settings))  # `pingjia --config F simulate`
    sim = Sim(tmp_path, "--no-sync", "--allow-origin", ORIGIN,
              "--allow-origin", "https://ywxt.example.gov.cn")
    try:
        url = f"https://127.0.0.1:{sim.port}"
        sim.wait_line(f"local API {url}")
        for origin, status in ((ORIGIN, 204), ("https://ywxt.example.gov.cn", 204),
                               ("http://127.0.0.1:9999", 403)):
            r = requests.options(url + "/v1/invitations", verify=str(pki.ca), timeout=5, headers={
                "Origin": origin, "Access-Control-Request-Method": "POST"})
            assert r.status_code == status, origin
        conn = ["--port", str(sim.port), "--token", TOKEN, "--cacert", str(pki.ca)]
        done = cli("status", "--json", "--config", str(settings), *conn)
        assert done.returncode == 0, done.stderr
        answer = json.loads(done.stdout)
        assert answer["running"] is True and answer["source"] == "terminal", answer
        done = cli("invite", "--demo", "--staff-id", "0131", "--staff-name", "王芳",
                   "--visit-id", "cli-tls", "--json", *conn)
        assert done.returncode == 0, done.stderr
        sim.keys("5")
        done = cli("visit", "cli-tls", "--json", *conn)
        for _ in range(50):
            if json.loads(done.stdout).get("state") == "rated":
                break
            done = cli("visit", "cli-tls", "--json", *conn)
        assert json.loads(done.stdout)["level"] == 5
        # without the hall CA the client says what to do, and speaks no plain HTTP
        done = cli("visit", "cli-tls", "--port", str(sim.port), "--token", TOKEN,
                   "--config", str(settings))
        assert done.returncode != 0 and "--cacert" in done.stderr
    finally:
        monkeypatch.delenv("PINGJIA_CONFIG")
        sim.stop()
