"""The technician calls of the local API, on a real terminal: reload, tests, reader."""
from __future__ import annotations

import pytest

from config.edit import default_text, set_many
from terminal import flow
from terminal.screens.gallery import count_test_frames

from tests.terminal.conftest import TOKEN, start_terminal


@pytest.fixture
def tech(tmp_path):
    settings_file = tmp_path / "pingjia.toml"
    settings_file.write_text(default_text(), encoding="utf-8")
    set_many(settings_file, {"site.window_no": "07", "site.area_code": "330106",
                             "api.token": TOKEN})
    run, close = start_terminal(tmp_path, settings_file=str(settings_file))
    run.settings_file = settings_file
    r = run.call("PUT", "/v1/staff", {"id": "0131", "name": "王芳"})
    assert r.status_code == 200
    try:
        yield run
    finally:
        close()


def test_reload_applies_live_settings_and_names_the_rest(tech):
    set_many(tech.settings_file, {"site.window_no": "11", "timeouts.invite_s": 45,
                                  "display.rotate": 2, "central.timeout_s": 20})
    r = tech.call("POST", "/v1/config/reload")
    assert r.status_code == 200, r.text
    answer = r.json()
    assert sorted(answer["applied"]) == ["site.window_no", "timeouts.invite_s"]
    assert answer["restart"] == {"terminal": ["display.rotate"], "agent": ["central.timeout_s"]}
    config = tech.terminal.snapshot().config
    assert (config.window_no, config.invite_ms) == ("11", 45_000)
    # nothing new the second time; the restart is still owed
    again = tech.call("POST", "/v1/config/reload").json()
    assert again["applied"] == [] and again["restart"] == answer["restart"]


def test_a_bad_settings_file_changes_nothing(tech):
    text = tech.settings_file.read_text(encoding="utf-8")
    tech.settings_file.write_text(text + "\n[timeouts]\ninvite_s = 1\n", encoding="utf-8")
    r = tech.call("POST", "/v1/config/reload")
    assert r.status_code == 422 and r.json()["error"] == "invalid_settings"
    assert str(tech.settings_file) in r.json()["message"]
    assert tech.terminal.snapshot().config.window_no == "07"


def test_reload_without_a_settings_file_is_refused(running):
    r = running.call("POST", "/v1/config/reload")
    assert r.status_code == 409 and r.json()["error"] == "no_settings_file"


def test_a_test_waits_for_an_idle_screen_and_blocks_invitations(tech):
    item = {"items": [{"project_no": "P-1", "task_name": "户籍迁入"}]}
    assert tech.call("POST", "/v1/invitations", item).status_code == 201
    r = tech.call("POST", "/v1/test", {"kind": "buttons"})
    assert r.status_code == 409 and r.json()["error"] == "busy"
    tech.press(5)
    tech.wait_for(lambda: tech.call("POST", "/v1/test", {"kind": "buttons", "seconds": 30})
                  .status_code == 201, what="the test to start after the rating")
    r = tech.call("POST", "/v1/invitations", {"items": [{"project_no": "P-2", "task_name": "x"}]})
    assert r.status_code == 409 and r.json()["error"] == "testing"
    tech.press(3)
    tech.terminal.post(flow.Hold(1))
    progress = tech.wait_for(lambda: (p := tech.call("GET", "/v1/test").json())["presses"]
                             and len(p["presses"]) == 2 and p, what="two presses")
    assert progress["presses"] == [{"button": 3, "kind": "press"}, {"button": 1, "kind": "hold"}]
    assert progress["state"] == "running" and 0 < progress["remaining_s"] <= 30
    stopped = tech.call("DELETE", "/v1/test")
    assert stopped.status_code == 200 and stopped.json()["state"] == "stopped"
    assert tech.call("DELETE", "/v1/test").status_code == 404
    assert tech.call("GET", "/v1/test").json()["state"] == "stopped"
    assert tech.call("POST", "/v1/invitations", {"items": [{"project_no": "P-2", "task_name": "x"}]}
                     ).status_code == 201


def test_the_display_test_shows_every_frame_on_the_terminals_own_display(tech):
    frames = count_test_frames(tech.terminal.snapshot().config)
    before = tech.terminal.stats["frames"]
    r = tech.call("POST", "/v1/test", {"kind": "display", "seconds": 2})
    assert r.status_code == 201 and r.json()["frames"] == frames
    done = tech.wait_for(lambda: (p := tech.call("GET", "/v1/test").json())["state"] == "done" and p,
                         timeout=10, what="the display test to end")
    assert done["frame"] == frames
    assert tech.terminal.stats["frames"] - before >= frames   # each frame drawn
    assert tech.terminal.stats["faults"] == 0


def test_the_reader_check_of_a_window_evaluator(tech):
    r = tech.call("GET", "/v1/test/reader")
    assert r.status_code == 200 and r.json()["present"] is False and r.json()["mode"] == "window"
