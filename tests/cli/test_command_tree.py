"""Every `pingjia` command as a newcomer meets it: with no arguments, with --help, with
an argument it does not know, and with the terminal service down. Each answer is short,
names what is wrong, has a sensible exit code and never a Python traceback.

The commands are discovered from the parser itself, so a new command is walked too."""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys

import pytest

from config.cli import build_parser
from tests.cli.conftest import ROOT, free_port

# a command still running after this long serves something (simulate, receiver serve)
SERVES_AFTER_S = 8
EXIT_CODES = {0, 1, 2, 3}   # docs/cli.md: done, failed, usage/settings, not running
MAX_ERROR_LINES = 4


def _subparsers(parser):
    return [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]


def walk(parser, path=()):
    """(path, parser, has_subcommands) for every command and subcommand."""
    groups = _subparsers(parser)
    yield path, parser, bool(groups)
    for group in groups:
        for name, sub in group.choices.items():
            yield from walk(sub, path + (name,))


TREE = [(path, parser, groups) for path, parser, groups in walk(build_parser()) if path]
COMMANDS = [path for path, _, _ in TREE]
LEAVES = [path for path, _, groups in TREE if not groups]


def _options(parser) -> set[str]:
    return {o for a in parser._actions for o in a.option_strings}


def _name(path) -> str:
    return " ".join(path)


def run(args, cwd, timeout=60, env=None) -> tuple[int, str, str]:
    """The real command in a scratch directory, with no settings of this machine; a
    command that is still running after SERVES_AFTER_S is stopped as systemd would."""
    full = {k: v for k, v in os.environ.items()
            if not k.startswith("PINGJIA_") and k != "CREDENTIALS_DIRECTORY"}
    # `config edit` opens an editor: one that ends at once
    full.update({"PYTHONPATH": str(ROOT), "HOME": str(cwd), "EDITOR": "true", "VISUAL": "true",
                 **(env or {})})
    proc = subprocess.Popen([sys.executable, "-m", "config.cli", *args], cwd=cwd, env=full,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=SERVES_AFTER_S)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError(f"pingjia {' '.join(args)} did not stop on SIGTERM: {err}")
    return proc.returncode, out, err


def test_the_walk_finds_every_kind_of_command():
    assert len(LEAVES) >= 30
    for path in (("simulate",), ("status",), ("test", "network"), ("outbox", "export"),
                 ("config", "set"), ("receiver", "import"), ("staff", "signin")):
        assert path in COMMANDS, path


@pytest.mark.parametrize("path", COMMANDS, ids=_name)
def test_help_is_short_and_exact(path, tmp_path):
    code, out, err = run([*path, "--help"], tmp_path)
    assert code == 0, err
    assert out.startswith(f"usage: pingjia {_name(path)}"), out[:200]
    assert "Traceback" not in err and err == ""


@pytest.mark.parametrize("path", COMMANDS, ids=_name)
def test_an_unknown_option_gets_that_commands_usage(path, tmp_path):
    code, out, err = run([*path, "--no-such-option"], tmp_path)
    assert code == 2, (out, err)
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert lines[0].startswith(f"usage: pingjia {_name(path)}"), err   # not the top level's
    assert lines[-1].startswith(f"pingjia {_name(path)}: error: "), err


@pytest.mark.parametrize("path", COMMANDS, ids=_name)
def test_no_arguments_is_a_short_answer_or_a_service_that_stops_cleanly(path, tmp_path):
    code, out, err = run([*path], tmp_path, env={"PINGJIA_CONFIG": str(tmp_path / "none.toml")}
                         if path == ("agent",) else None)
    assert "Traceback" not in err, err
    assert code in EXIT_CODES, (code, err)
    if code != 0:  # a group prints its help, doctor its findings; never silence
        assert (out + err).strip(), f"exit {code} without a word"
        messages = [line for line in err.splitlines() if not line.startswith(" ")]
        assert len(messages) <= MAX_ERROR_LINES + 12, err   # argparse usage may wrap


@pytest.mark.parametrize("path", [p for p, parser, groups in TREE
                                  if not groups and {"--port", "--token"} <= _options(parser)
                                  and p != ("simulate",)], ids=_name)
def test_with_the_terminal_down_each_command_says_so(path, tmp_path):
    """Every command that talks to the terminal, pointed at a port where none listens."""
    args = [*path, "--port", str(free_port()), "--token", "t" * 32, "--data-dir", str(tmp_path)]
    parser = dict((p, pr) for p, pr, _ in TREE)[path]
    if "--data-dir" not in _options(parser):
        args = args[:-2]
    positionals = [a for a in parser._actions if not a.option_strings
                   and not isinstance(a, argparse._SubParsersAction)]
    args += ["x"] * len(positionals)   # visit ID, staff ID NAME, config KEY VALUE
    if path == ("invite",):
        args += ["--demo"]
    if path[0] == "config":
        # a file the one settings check passes, so the command gets as far as the terminal
        (tmp_path / "pingjia.toml").write_text(f'[api]\ntoken = "{"t" * 32}"\nport = {free_port()}\n',
                                               encoding="utf-8")
        args += ["--config", str(tmp_path / "pingjia.toml")]
        if path == ("config", "set"):
            args[-4:-2] = ["site.window_no", "07"]
    code, out, err = run(args, tmp_path)
    assert "Traceback" not in err, err
    assert code in EXIT_CODES, (code, out, err)
    said = (out + err).lower()
    assert any(word in said for word in ("not running", "does not answer", "refused",
                                         "not reloaded", "no terminal", "connect", "created", "no change",
                                         "no database")), out + err
    assert len([line for line in err.splitlines() if line.strip()]) <= MAX_ERROR_LINES, err
