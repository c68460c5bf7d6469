"""`pingjia enroll` against the reference receiver, then `pingjia test network` with the
secret it stored."""
from __future__ import annotations

import stat
import time
import tomllib

from agent.receiver import Receiver
from config.edit import set_many
from tests.cli.conftest import as_json


def test_enroll_stores_the_secret_owner_only_and_never_prints_it(device, tmp_path):
    codes = {"HALL-7-WIN-12": {"device_id": "PJQ-330106-0099", "hash_alg": "sha256"}}
    with Receiver(tmp_path / "receiver.db", enroll_codes=codes) as receiver:
        r = device.run("enroll", "WRONG-CODE", "--server", receiver.url)
        assert r.returncode == 1 and "bad_enrollment_code" in r.stderr
        assert not device.secret_file.exists()

        r = device.run("enroll", "HALL-7-WIN-12", "--server", receiver.url, "--json")
        assert r.returncode == 0, r.stderr
        answer = as_json(r)
        assert answer["device_id"] == "PJQ-330106-0099" and "secret" not in answer
        mode = stat.S_IMODE(device.secret_file.stat().st_mode)
        assert mode == 0o600
        secret = device.secret_file.read_text().strip()
        assert len(secret) >= 32 and secret not in r.stdout + r.stderr
        settings = tomllib.loads(device.config.read_text(encoding="utf-8"))
        assert settings["device"]["id"] == "PJQ-330106-0099"
        assert settings["central"]["url"] == receiver.url
        assert not list(device.secret_file.parent.glob("*.tmp"))

        # a second enrolment would throw the secret away: only on purpose
        again = device.run("enroll", "HALL-7-WIN-12", "--server", receiver.url)
        assert again.returncode == 2 and "--force" in again.stderr
        assert device.secret_file.read_text().strip() == secret

        # the secret works: signed request accepted, clock within bounds
        r = device.run("test", "network", "--json")
        assert r.returncode == 0, r.stdout + r.stderr
        steps = as_json(r)["steps"]
        assert [s["step"] for s in steps] == ["dns", "tcp", "signed", "clock"]
        assert all(s["ok"] for s in steps)
        assert secret not in r.stdout + r.stderr

    # a receiver whose clock is 20 minutes ahead: the check says the device clock is off
    with Receiver(tmp_path / "receiver.db", clock=lambda: time.time() + 1200) as late:
        set_many(device.config, {"central.url": late.url})
        r = device.run("test", "network", "--json")
        assert r.returncode == 1
        clock = as_json(r)["steps"][-1]
        assert clock["step"] == "clock" and not clock["ok"] and "-1200 s" in clock["detail"]


def test_network_check_names_the_step_that_fails(device):
    set_many(device.config, {"central.url": "http://127.0.0.1:9"})
    r = device.run("test", "network", "--json")
    assert r.returncode == 1
    steps = as_json(r)["steps"]
    assert [s["step"] for s in steps] == ["dns", "tcp"] and not steps[-1]["ok"]
    assert "Traceback" not in r.stderr
