"""One settings check (issue 10, item 7): `config validate`, `config set` and the
terminal's start refuse the same files in the same words, and no file makes any of
them print a traceback. Everything runs the real `pingjia` command in a subprocess."""
from __future__ import annotations

import re
import socket
import subprocess
import sys

import pytest

from config.edit import default_text
from tests.cli.conftest import ROOT, TOKEN, free_port, pingjia

GOOD_TOKEN = "0123456789abcdef0123456789abcdef"   # 32 characters: no warning


def settings_file(tmp_path, body: str, name: str = "pingjia.toml", token: str | None = GOOD_TOKEN,
                  port: int | None = None):
    """A settings file: `body`, after an [api] table with a token and a free port."""
    api = f'[api]\nbind = "127.0.0.1"\nport = {port or free_port()}\n'
    if token is not None:
        api += f'token = "{token}"\n'
    path = tmp_path / name
    path.write_text(api + body, encoding="utf-8")
    return path


def refused(result, *where: str) -> str:
    """The command failed, without a traceback, naming each `file:line: key:` given."""
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    for w in where:
        assert w in result.stderr, result.stderr
    return result.stderr


def validate(path):
    return pingjia("config", "validate", "--config", path)


# --- the token -------------------------------------------------------------------------------

@pytest.mark.parametrize("token, why", [("", "needs a bearer token"),
                                        ("short-token-15c", "too short (15 characters")])
def test_validate_refuses_a_missing_or_short_token(tmp_path, token, why):
    path = settings_file(tmp_path, "", token=token)
    err = refused(validate(path), f"{path}:4: api.token: ")
    assert why in err and (not token or token not in err), "the token is never echoed"


def test_a_token_under_24_characters_is_a_warning(tmp_path):
    path = settings_file(tmp_path, "", token="abcdefghijklmnopqrst")  # 20
    r = validate(path)
    assert r.returncode == 0, r.stderr
    assert f"warning: {path}:4: api.token: the token is short (20 characters)" in r.stderr
    assert "abcdefghijklmnopqrst" not in r.stderr


def test_the_token_file_is_read_and_checked_too(tmp_path):
    missing = tmp_path / "no-such-token"
    path = settings_file(tmp_path, "", token=None)
    path.write_text(path.read_text() + f'token_file = "{missing}"\n')
    refused(validate(path), f"{path}:4: api.token_file: the API token file {missing} does not exist")
    short = tmp_path / "api-token"
    short.write_text("0123456789\n")
    path.write_text(path.read_text().replace(str(missing), str(short)))
    refused(validate(path), f"{path}:4: api.token_file: the token is too short (10 characters")
    short.write_text(GOOD_TOKEN + "\n")
    assert validate(path).returncode == 0


def test_set_refuses_what_validate_refuses_and_leaves_the_file(tmp_path):
    path = settings_file(tmp_path, "")
    before = path.read_text()
    r = pingjia("config", "set", "api.token", "tooshort", "--config", path, "--no-reload")
    refused(r, f"{path}:4: api.token: the token is too short (8 characters")
    r = pingjia("config", "set", "api.bind", "localhost", "--config", path, "--no-reload")
    refused(r, f"{path}:2: api.bind: must be an IP address")
    assert path.read_text() == before


# --- the bind address and the port -------------------------------------------------------------

@pytest.mark.parametrize("bind", ["localhost", "pingjia.local", "0.0.0.0:8410", "256.1.1.1", ""])
def test_the_bind_address_must_be_an_ip_address(tmp_path, bind):
    path = settings_file(tmp_path, "")
    path.write_text(path.read_text().replace('bind = "127.0.0.1"', f'bind = "{bind}"'))
    refused(validate(path), f"{path}:2: api.bind: must be an IP address")


def test_an_ipv6_bind_address_is_accepted(tmp_path):
    path = settings_file(tmp_path, "")
    path.write_text(path.read_text().replace('bind = "127.0.0.1"', 'bind = "::1"'))
    r = validate(path)
    assert r.returncode == 0 or "no network interface" in r.stderr, r.stderr  # no IPv6 here


def listening():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s


def test_a_port_another_program_holds_is_an_error_for_validate_and_start(tmp_path):
    with listening() as other:
        port = other.getsockname()[1]
        path = settings_file(tmp_path, "", port=port)
        line = f"{path}:3: api.port: port {port} on 127.0.0.1 is in use by another program"
        refused(validate(path), line)
        start = subprocess.run([sys.executable, "-m", "config.cli", "--config", str(path),
                                "terminal"], cwd=ROOT, capture_output=True, text=True, timeout=60)
        err = refused(start, line)
        assert err.strip().splitlines() == [f"pingjia terminal: {line} "
                                            f"(`ss -ltnp 'sport = :{port}'` says which)"]


def test_the_running_terminals_own_port_is_only_a_warning_for_validate(simulator):
    r = simulator.device.run("config", "validate")
    assert r.returncode == 0, r.stderr
    assert re.search(r"warning: .*api\.port: port \d+ on 127\.0\.0\.1 is in use "
                     r"\(by the running terminal\?\)", r.stderr), r.stderr
    assert TOKEN not in r.stderr


def test_the_terminal_start_refuses_a_short_token_in_one_line(tmp_path):
    path = settings_file(tmp_path, "", token="pingjia-sim")
    start = subprocess.run([sys.executable, "-m", "config.cli", "--config", str(path), "terminal"],
                           cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert start.returncode == 2
    err = refused(start, f"pingjia terminal: {path}:4: api.token: the token is too short")
    assert len(err.strip().splitlines()) == 1


# --- files no check may trip over ---------------------------------------------------------------

def test_deeply_nested_arrays_are_named_not_a_recursion_error(tmp_path):
    path = settings_file(tmp_path, "[display]\nfonts = " + "[" * 5000 + "]" * 5000 + "\n")
    err = refused(validate(path), f"{path}:6: display.fonts: arrays or tables nested too deeply")
    assert "RecursionError" not in err
    r = pingjia("config", "set", "site.window_no", "02", "--config", path, "--no-reload")
    assert "nested" in refused(r, f"{path}:6: display.fonts: ")


def test_a_utf8_bom_is_accepted(tmp_path):
    path = settings_file(tmp_path, '[site]\nhall_name = "市民中心"\n')
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    r = validate(path)
    assert r.returncode == 0 and r.stdout.strip() == f"{path}: ok", r.stderr
    r = pingjia("config", "set", "site.window_no", "02", "--config", path, "--no-reload")
    assert r.returncode == 0, r.stderr
    assert 'window_no = "02"' in path.read_text(encoding="utf-8")


def test_a_byte_that_is_not_utf8_is_named_with_line_and_key(tmp_path):
    path = settings_file(tmp_path, '[site]\nhall_name = "市民"\n')
    path.write_bytes(path.read_bytes().replace("市民".encode(), "市民".encode("gbk")))
    refused(validate(path), f"{path}:6: site.hall_name: not UTF-8: byte 0xca at column 14")
    r = pingjia("config", "set", "site.window_no", "02", "--config", path, "--no-reload")
    refused(r, f"{path}:6: site.hall_name: not UTF-8")


def test_a_50_mb_value_is_cut_in_the_message(tmp_path):
    path = settings_file(tmp_path, '[texts]\nwelcome = "' + "欢" * (50 * 1024 * 1024 // 3) + '"\n')
    err = refused(validate(path), f"{path}:6: texts.welcome: must be at most 40 characters")
    assert len(err) < 1000


@pytest.mark.parametrize("body, where, why", [
    ('[texts]\nwelcome = "欢迎\\u0007"\n', "texts.welcome", "control character (U+0007)"),
    ('[texts]\nthanks = "谢谢\\n您"\n', "texts.thanks", "control character (U+000A)"),
    ('[site]\nhall_name = "中心\\uFFFF"\n', "site.hall_name", "Unicode noncharacter (U+FFFF)"),
    ('[levels]\nlabels = {5 = "很好\\u009b", 4 = "好", 3 = "一般", 2 = "差", 1 = "很差"}\n',
     "levels.labels", "5: contains a control character (U+009B)"),
    ('[display]\nfonts = ["a.bdf", "b\\u0000.bdf"]\n', "display.fonts", "[1]: contains a control"),
    ('[display]\nfonts = ["a.bdf", 3]\n', "display.fonts", "every item must be a string"),
    ('[buttons]\npins = {"²" = 17, 4 = 27, 3 = 22, 2 = 23, 1 = 16}\n', "buttons.pins",
     "must be a level number"),
])
def test_every_text_and_odd_key_is_a_named_problem(tmp_path, body, where, why):
    path = settings_file(tmp_path, body)
    err = refused(validate(path), f"{path}:6: {where}: ")
    assert why in err
    assert "\x1b" not in err and "\x00" not in err and "\x07" not in err


def test_a_key_with_a_control_character_is_shown_escaped(tmp_path):
    path = settings_file(tmp_path, '[site]\n"\\u001b[2J" = 1\n')
    err = refused(validate(path), f"{path}:5: 'site.\\x1b[2J': unknown key")
    assert "\x1b" not in err


def test_a_tag_file_with_a_control_character_is_refused(tmp_path):
    tags = tmp_path / "tags.toml"
    good = (ROOT / "config" / "tags_v2.toml").read_text(encoding="utf-8")
    first_text = re.search(r'text = "([^"]+)"', good).group(1)
    tags.write_text(good.replace(first_text, first_text + "\\u0008", 1), encoding="utf-8")
    path = settings_file(tmp_path, f'[tags]\nfile = "{tags}"\n')
    err = refused(validate(path), f"{tags}: levels.")
    assert "control character (U+0008)" in err


def test_the_documented_default_file_fails_only_for_its_missing_token(tmp_path):
    path = tmp_path / "pingjia.toml"
    path.write_text(default_text(), encoding="utf-8")
    err = refused(validate(path), "api.token: the local API needs a bearer token")
    assert len(err.strip().splitlines()) == 2   # "settings error:" and that one problem
