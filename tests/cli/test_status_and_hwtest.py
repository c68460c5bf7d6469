"""`pingjia status` and `pingjia test ...` against a running simulator, and without it."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import (DEVICE_ID, ROOT, Device, Simulator, add_records, as_json,
                                free_port, pingjia)


@pytest.fixture(scope="module")
def simulator(tmp_path_factory):
    """One simulator for this module; the status test, which stops it, runs last."""
    sim = Simulator(Device(tmp_path_factory.mktemp("cli-sim")))
    try:
        yield sim
    finally:
        sim.stop()


def test_display_and_button_tests_run_inside_the_terminal(simulator):
    device = simulator.device
    visit = {"items": [{"project_no": "P0", "task_name": "户籍迁入"}]}
    assert device.api("POST", "/v1/invitations", json=visit).status_code == 201
    r = device.run("test", "display")   # someone is rating: never cut off
    assert r.returncode == 1 and "busy" in r.stderr and "Traceback" not in r.stderr
    assert device.api("DELETE", "/v1/invitations/current").status_code == 200
    r = device.run("test", "display", "--seconds", "1", "--json")
    assert r.returncode == 0, r.stderr
    display = as_json(r)
    assert display["via"] == "terminal" and display["state"] == "done"
    assert display["frame"] == display["frames"] > 30   # the patterns and every screen

    test = subprocess.Popen([sys.executable, "-m", "config.cli", "test", "buttons", "--config",
                             str(device.config), "--seconds", "8", "--json"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        simulator.wait_for(lambda: device.api("GET", "/v1/test").status_code == 200
                           and device.api("GET", "/v1/test").json()["kind"] == "buttons",
                           what="the button test")
        r = device.api("POST", "/v1/invitations",
                       json={"items": [{"project_no": "P1", "task_name": "户籍迁入"}]})
        assert r.status_code == 409 and r.json()["error"] == "testing"
        for key in "5432":
            simulator.proc.stdin.write(key + "\n")
            simulator.proc.stdin.flush()
            level = int(key)
            # the LED of the button just pressed is the one lit
            simulator.wait_for(lambda: device.api("GET", "/v1/status").json()["hardware"]
                               ["buttons"]["lit"] == [level], what=f"LED {level}")
        simulator.proc.stdin.write("1\n")   # the last one: the command ends the test at once
        simulator.proc.stdin.flush()
        out, err = test.communicate(timeout=30)
    finally:
        if test.poll() is None:
            test.kill()
    assert test.returncode == 0, err
    answer = json.loads(out)
    assert answer["ok"] is True and answer["buttons_seen"] == [5, 4, 3, 2, 1]
    assert [p["button"] for p in answer["presses"]] == [5, 4, 3, 2, 1]
    # the window takes invitations again
    assert device.api("GET", "/v1/status").json()["state"] == "idle"

    r = device.run("test", "reader", "--json")
    assert r.returncode == 0 and as_json(r)["present"] is False


def test_the_display_test_on_the_terminal_says_how_far_it_is(simulator):
    r = simulator.device.run("test", "display", "--seconds", "3")
    assert r.returncode == 0, r.stderr
    frames = re.findall(r"^frame (\d+)/(\d+), \d+ s left$", r.stderr, re.M)
    assert len(frames) >= 3, r.stderr                       # not silent until the end
    assert [int(n) for n, _ in frames] == sorted(int(n) for n, _ in frames)
    assert "display test done" in r.stdout


def test_with_the_terminal_stopped_the_command_opens_the_hardware_itself(device):
    r = device.run("test", "display", "--seconds", "1", "--json")
    assert r.returncode == 0, r.stderr
    answer = as_json(r)
    assert answer["via"] == "local" and answer["shown"] == answer["frames"] > 30
    assert answer["display"]["errors"] == 0 and answer["display"]["frames"] > 30

    r = device.run("test", "buttons", "--seconds", "1", "--json")
    assert r.returncode == 1   # nobody pressed: the check says which buttons never answered
    answer = as_json(r)
    assert answer["via"] == "local" and answer["missing"] == [5, 4, 3, 2, 1]
    assert answer["pin_factory"] == "MockFactory"


def test_status_asks_the_running_terminal_then_reads_the_store_when_it_is_down(simulator):
    device = simulator.device
    r = device.run("status", "--json")
    assert r.returncode == 0, r.stderr
    up = as_json(r)
    assert up["running"] is True and up["source"] == "terminal"
    assert up["device_id"] == DEVICE_ID and up["mode"] == "window" and up["state"] == "idle"
    n = up["records"]   # the module's earlier tests may have left a record
    assert up["staff"]["name"] and up["queue_depth"] == n and up["rejected"] == 0
    assert {"display", "buttons"} <= set(up["hardware"]) and up["version"]
    assert "synced" in up["clock"] and up["problems"] == []

    simulator.stop()
    add_records(device, 3, rejected=(n + 2,))
    r = device.run("status", "--json")
    assert r.returncode == 3, r.stderr
    down = as_json(r)
    assert down["running"] is False and down["source"] == "store" and "not running" in down["reason"]
    assert (down["queue_depth"], down["rejected"], down["records"]) == (n + 2, 1, n + 3)
    assert down["oldest_unsent_at"] and down["last_upload_at"] is None
    human = device.run("status")
    assert human.returncode == 3 and "NOT RUNNING" in human.stdout
    assert f"{n + 2} unsent" in human.stdout


def test_the_reader_check_of_a_kiosk_shows_the_last_read_masked(tmp_path):
    sim = Simulator(Device(tmp_path / "kiosk"), "--mode", "kiosk")
    try:
        device = sim.device
        sim.wait_for(lambda: device.api("GET", "/v1/test/reader").json()["state"] == "connected",
                     what="the simulated reader")
        sim.proc.stdin.write("c\n")   # the sample resident card on the reader
        sim.proc.stdin.flush()
        sim.wait_for(lambda: device.api("GET", "/v1/test/reader").json()["last_read"],
                     what="a card read")
        r = device.run("test", "reader", "--json")
        assert r.returncode == 0, r.stderr
        answer = as_json(r)
        assert answer["via"] == "terminal" and answer["state"] == "connected"
        last = answer["last_read"]
        assert last["result"] == "read" and last["card_type"] == "resident"
        assert "*" in last["masked_name"]
        assert set(last) == {"result", "card_type", "masked_name", "at"}   # no ID number
        assert not re.search(r"\d{15}", r.stdout + r.stderr)
    finally:
        sim.stop()


@pytest.mark.skipif(Path("/etc/pingjia/pingjia.toml").exists(),
                    reason="this machine has a settings file at the default place")
def test_without_a_settings_file_the_options_say_where_the_terminal_and_store_are(tmp_path):
    """A development machine or the simulator: no /etc/pingjia, the options are enough."""
    add_records(Device(tmp_path), 2)  # a store in tmp_path/data; the settings file is unused
    down = pingjia("status", "--json", "--port", free_port(), "--token", "t",
                   "--data-dir", tmp_path / "data")
    assert down.returncode == 3, down.stdout + down.stderr
    answer = as_json(down)
    assert answer["running"] is False and answer["queue_depth"] == 2
    named = pingjia("--config", tmp_path / "missing.toml", "status", "--port", free_port())
    assert named.returncode == 2 and "missing.toml" in named.stderr  # a named file must exist
    plain = pingjia("status")   # a newcomer's first try: the answer says what to add
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    assert "no settings file at /etc/pingjia/pingjia.toml" in plain.stderr
    assert "pingjia status --port PORT --token TOKEN --data-dir DIR" in plain.stderr
