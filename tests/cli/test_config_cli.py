"""`pingjia config ...` run as a technician would: set, validate, edit, get, show."""
from __future__ import annotations

import sys
import textwrap

from tests.cli.conftest import as_json, pingjia


def test_set_keeps_comments_and_layout_and_says_what_needs_a_restart(device):
    before = device.config.read_text(encoding="utf-8")
    r = device.run("config", "set", "timeouts.invite_s", "90", "--json", "--no-reload")
    assert r.returncode == 0, r.stderr
    answer = as_json(r)
    assert answer["changed"] == ["timeouts.invite_s"] and answer["live"] == ["timeouts.invite_s"]
    after = device.config.read_text(encoding="utf-8")
    changed = [(a, b) for a, b in zip(before.splitlines(), after.splitlines()) if a != b]
    assert len(changed) == 1 and changed[0][1].replace(" ", "").startswith("invite_s=90")
    assert len(before.splitlines()) == len(after.splitlines())   # every comment still there

    r = device.run("config", "set", "display.rotate", "2", "--no-reload")
    assert r.returncode == 0, r.stderr
    assert "restart needed: systemctl restart pingjia-terminal (for display.rotate)" in r.stdout
    shown = as_json(device.run("config", "show", "--json"))
    assert (shown["timeouts"]["invite_s"], shown["display"]["rotate"]) == (90, 2)


def test_a_bad_value_names_file_line_and_key_and_changes_nothing(device):
    before = device.config.read_bytes()
    r = device.run("config", "set", "timeouts.invite_s", "soon")
    assert r.returncode == 2
    assert str(device.config) in r.stderr and "timeouts.invite_s" in r.stderr
    assert "integer" in r.stderr and "Traceback" not in r.stderr
    r = device.run("config", "set", "site.nosuchkey", "1")
    assert r.returncode == 2 and "no setting site.nosuchkey" in r.stderr
    assert device.config.read_bytes() == before


def test_validate_reports_a_broken_file_with_its_line(device):
    lines = device.config.read_text(encoding="utf-8").splitlines()
    n = next(i for i, line in enumerate(lines) if line.strip().startswith("window_no"))
    lines[n] = 'window_no = "07" "oops"'
    device.config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    r = device.run("config", "validate")
    assert r.returncode == 2 and f"{device.config}:{n + 1}" in r.stderr, r.stderr


def test_edit_checks_the_copy_before_it_replaces_the_file(device, tmp_path):
    editor = tmp_path / "editor.py"
    editor.write_text(textwrap.dedent("""
        import re, sys
        path = sys.argv[1]
        text = open(path, encoding="utf-8").read()
        text = re.sub(r'(?m)^hall_name = .*$', 'hall_name = "市民中心"', text, count=1)
        text = re.sub(r'(?m)^thanks_s = .*$', 'thanks_s = {thanks}', text, count=1)
        open(path, "w", encoding="utf-8").write(text)
    """), encoding="utf-8")
    before = device.config.read_bytes()
    bad = tmp_path / "bad.py"
    bad.write_text(editor.read_text().replace("{thanks}", "-5"), encoding="utf-8")
    r = device.run("config", "edit", "--no-reload", env={"EDITOR": f"{sys.executable} {bad}"},
                   input="")
    assert r.returncode == 2 and "thanks_s" in r.stderr and "unchanged" in r.stderr
    assert device.config.read_bytes() == before

    good = tmp_path / "good.py"
    good.write_text(editor.read_text().replace("{thanks}", "6"), encoding="utf-8")
    r = device.run("config", "edit", "--no-reload", "--json",
                   env={"VISUAL": "", "EDITOR": f"{sys.executable} {good}"})
    assert r.returncode == 0, r.stderr
    assert sorted(as_json(r)["changed"]) == ["site.hall_name", "timeouts.thanks_s"]
    assert 'hall_name = "市民中心"' in device.config.read_text(encoding="utf-8")


def test_settings_changes_reach_the_running_terminal(simulator):
    device = simulator.device
    r = device.run("config", "set", "site.window_no", "12", "--json")
    assert r.returncode == 0, r.stderr
    assert as_json(r)["reloaded"] is True
    assert device.api("GET", "/v1/status").json()["window_no"] == "12"

    # a broken file is refused by the terminal too: it keeps what it has
    text = device.config.read_text(encoding="utf-8")
    device.config.write_text(text.replace('window_no = "12"', 'window_no = 12345678901'),
                             encoding="utf-8")
    r = device.api("POST", "/v1/config/reload")
    assert r.status_code == 422 and r.json()["error"] == "invalid_settings"
    problem = r.json()["problems"][0]
    assert problem["file"] == str(device.config) and problem["key"] == "site.window_no"
    assert problem["line"]
    assert device.api("GET", "/v1/status").json()["window_no"] == "12"


def test_set_without_a_token_names_the_key_and_writes_nothing(tmp_path):
    """The one settings check refuses a file the terminal could not start on (no token):
    `config set` says which key and how to fix it, and writes nothing."""
    settings = tmp_path / "pingjia.toml"
    r = pingjia("config", "set", "site.window_no", "07", "--config", settings)
    assert r.returncode == 2, r.stderr
    assert "api.token: the local API needs a bearer token: set api.token or api.token_file" in r.stderr
    assert "Traceback" not in r.stderr and not settings.exists()
    r = pingjia("config", "set", "api.token", "a-token-set-by-the-technician-0001", "--config", settings)
    assert r.returncode == 0, r.stderr
    r = pingjia("config", "set", "site.window_no", "07", "--config", settings)
    assert r.returncode == 0, r.stderr
    assert "cannot ask the terminal: settings:" not in r.stdout + r.stderr
