"""`pingjia invite | visit | cancel | staff | window` (config/cli/local_api.py) against the
real server: output, exit codes, and where port and token come from."""
from __future__ import annotations

import argparse
import json
import socket

import pytest

from config.cli import local_api
from config.cli.local_api import add_commands, main
from tests.terminal.conftest import TOKEN, running  # noqa: F401 - the fixture


@pytest.fixture(autouse=True)
def no_device_settings(monkeypatch, tmp_path):
    """Tests must not pick up a real device's /etc/pingjia or the caller's environment."""
    monkeypatch.setattr(local_api, "DEFAULT_SETTINGS", str(tmp_path / "absent.toml"))
    for name in ("PINGJIA_PORT", "PINGJIA_TOKEN"):
        monkeypatch.delenv(name, raising=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(running, *argv):
    return main([*argv, "--port", str(running.api.port), "--token", TOKEN])


def test_cli_invite_demo_then_visit_then_cancel(running, capsys):
    assert cli(running, "staff", "signin", "0131", "王芳") == 0
    assert "signed in: 王芳 (0131)" in capsys.readouterr().out
    assert cli(running, "invite", "--demo", "--visit-id", "demo-1") == 0
    out = capsys.readouterr().out
    assert out.startswith("invited: visit demo-1 is open") and "[330106" in out
    assert cli(running, "visit", "demo-1") == 0
    assert "waiting for the person to rate" in capsys.readouterr().out
    assert cli(running, "cancel") == 0
    assert "cancelled: visit demo-1 is closed (unrated)" in capsys.readouterr().out
    assert cli(running, "visit", "demo-1", "--json") == 0
    assert json.loads(capsys.readouterr().out) == {"visit_id": "demo-1", "state": "unrated",
                                                   "reason": "cancelled", "unrated_reason": "cancelled"}


def test_cli_invite_a_batch_with_named_staff(running, capsys):
    code = cli(running, "invite", "--project-no", "P-1", "--task-name", "营业执照设立登记",
               "--item", "P-2:户籍迁入", "--item", "P-3：居住证办理", "--staff-id", "0315",
               "--staff-name", "陈静", "--json")
    assert code == 0
    visit_id = json.loads(capsys.readouterr().out)["visit_id"]
    running.press(5)
    running.wait_for(lambda: len(running.records()) == 3, what="three records")
    assert {(r["project_no"], r["task_name"], r["staff_name"], r["visit_id"]) for r in running.records()} == {
        ("P-1", "营业执照设立登记", "陈静", visit_id), ("P-2", "户籍迁入", "陈静", visit_id),
        ("P-3", "居住证办理", "陈静", visit_id)}
    assert cli(running, "visit", visit_id) == 0
    assert "rated 5 (非常满意)" in capsys.readouterr().out


def test_cli_window_pause_and_open(running, capsys):
    assert cli(running, "window", "pause", "--message", "午休") == 0
    assert capsys.readouterr().out.strip() == "window paused"
    assert running.call("GET", "/v1/status").json()["pause_message"] == "午休"
    assert cli(running, "window", "open") == 0
    assert cli(running, "staff", "signout") == 0
    assert capsys.readouterr().out.splitlines() == ["window open", "signed out"]


def test_cli_api_error_exits_1_with_the_message_on_stderr(running, capsys):
    assert cli(running, "invite", "--item", "P-1:不动产登记") == 1  # nobody signed in
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "no staff member is signed in" in captured.err and "409 no_staff" in captured.err


@pytest.mark.parametrize("argv, message", [
    (["invite"], "say what to rate"),
    (["invite", "--item", "no-colon"], "PROJECT_NO:TASK_NAME"),
    (["invite", "--project-no", "1"], "go together"),
    (["invite", "--demo", "--staff-id", "1"], "go together"),
])
def test_cli_usage_errors_exit_2(running, capsys, argv, message):
    assert cli(running, *argv) == 2
    assert message in capsys.readouterr().err


def test_cli_without_a_running_terminal_exits_2(capsys):
    assert main(["cancel", "--port", str(free_port()), "--token", TOKEN]) == 2
    assert "not running on http://127.0.0.1:" in capsys.readouterr().err


def test_cli_without_a_token_exits_2(capsys):
    assert main(["cancel", "--port", "1"]) == 2
    assert "no API token" in capsys.readouterr().err


def test_port_and_token_from_the_settings_file(running, tmp_path, capsys):
    settings = tmp_path / "pingjia.toml"
    settings.write_text(f'[api]\nport = {running.api.port}\ntoken = "{TOKEN}"\n', encoding="utf-8")
    assert main(["staff", "signin", "1", "王芳", "--config", str(settings)]) == 0
    assert capsys.readouterr().out.startswith("signed in: 王芳")
    # as the `pingjia` command passes it: a top-level --config the subcommand must not hide
    parser = argparse.ArgumentParser()
    parser.add_argument("--config")
    add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["--config", str(settings), "staff", "signout", "--json"])
    assert args.func(args) == 0
    assert json.loads(capsys.readouterr().out) == {"staff": None}


def test_a_given_token_wins_over_a_settings_file_without_one(running, tmp_path, capsys):
    settings = tmp_path / "pingjia.toml"
    settings.write_text(f"[api]\nport = {running.api.port}\n", encoding="utf-8")
    assert main(["window", "open", "--config", str(settings), "--token", TOKEN]) == 0
    assert main(["window", "open", "--config", str(settings)]) == 2
    assert "api.token" in capsys.readouterr().err


def test_port_and_token_from_the_environment(running, monkeypatch, capsys):
    monkeypatch.setenv("PINGJIA_PORT", str(running.api.port))
    monkeypatch.setenv("PINGJIA_TOKEN", TOKEN)
    assert main(["window", "open"]) == 0
    assert capsys.readouterr().out.strip() == "window open"
    monkeypatch.setenv("PINGJIA_PORT", "eighty")
    assert main(["window", "open"]) == 2


def test_a_broken_settings_file_is_a_usage_error(tmp_path, capsys):
    settings = tmp_path / "pingjia.toml"
    settings.write_text("[api]\nport = 0\n", encoding="utf-8")
    assert main(["cancel", "--config", str(settings)]) == 2
    assert "api.port" in capsys.readouterr().err
