"""`pingjia config ...`: look at, check and change the settings file.

`set` and `edit` keep comments and layout (tomlkit), check the whole result with the
services' own loader before writing, write atomically, and then say what happens next:
the running terminal is told to reload what it can apply at once (texts, timeouts, tags,
site…); for the rest the command names the service to restart.
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from config import changes
from config import check as settings_check
from config import edit
from config.cli import local
from config import settings as schema
from config.document import toml_value
from config.errors import ConfigError
from terminal.client import ApiError


def add_command(subparsers) -> None:
    p = subparsers.add_parser("config", help="show, check or change the settings",
                              description=__doc__)
    sub = p.add_subparsers(dest="config_command", metavar="ACTION")
    v = sub.add_parser("validate", help="check the settings file (and its tag list)")
    local.add_settings_option(v)
    local.add_json_option(v)
    v.set_defaults(func=validate)
    s = sub.add_parser("show", help="print the effective settings")
    local.add_settings_option(s)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=show)
    g = sub.add_parser("get", help="print one setting, e.g. site.window_no")
    g.add_argument("key")
    local.add_settings_option(g)
    g.set_defaults(func=get)

    st = sub.add_parser("set", help="change one setting, e.g. `config set site.window_no 07`",
                        description="Change one setting in the settings file. KEY is "
                                    "SECTION.KEY (buttons.pins.5 for one entry of a table); "
                                    "VALUE is read as TOML (90, true, [5, 4, 3, 2, 1]) and "
                                    "otherwise taken as text. The file is checked whole "
                                    "before it is written; a bad value leaves it unchanged.")
    st.add_argument("key", metavar="KEY")
    st.add_argument("value", metavar="VALUE")
    _change_options(st)
    st.set_defaults(func=set_command)

    e = sub.add_parser("edit", help="edit the settings file in $VISUAL / $EDITOR, checked",
                       description="Open a copy of the settings file in $VISUAL or $EDITOR "
                                   "(default vi). The copy is checked when the editor closes: "
                                   "on a problem you edit again or give up, and the file is "
                                   "only replaced by a valid copy.")
    _change_options(e)
    e.set_defaults(func=edit_command)
    p.set_defaults(func=lambda args: p.print_help() or 2)


def _change_options(parser) -> None:
    local.add_settings_option(parser)
    parser.add_argument("--no-reload", action="store_true",
                        help="do not tell the running terminal to reload")
    local.add_json_option(parser)
    local.add_terminal_options(parser)


def _load(args) -> schema.Settings:
    return local.load_settings(args)


def validate(args) -> int:
    """The terminal's own start check (config/check.py), the port probe included."""
    checked = settings_check.check_file(local.settings_path(args), settings_check.VALIDATE)
    source = checked.settings.source
    for warning in checked.warnings:
        print(f"pingjia: warning: {warning}", file=sys.stderr)
    local.emit(args, {"file": source, "valid": True,
                      "warnings": [str(w) for w in checked.warnings]}, f"{source}: ok")
    return 0


def show(args) -> int:
    data = schema.to_dict(_load(args))
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
        return 0
    for section, values in data.items():
        print(f"[{section}]")
        for key, value in values.items():
            print(f"{key} = {toml_value(value)}")
        print()
    return 0


def get(args) -> int:
    data = schema.to_dict(_load(args))
    try:
        key = edit.parse_key(args.key)
    except edit.KeyProblem as exc:
        return local.fail(str(exc), 2)
    value = data[key.section][key.name]
    if key.sub is not None:
        entries = {str(k): v for k, v in value.items()}
        if key.sub not in entries:
            return local.fail(f"{key.setting} has no entry {key.sub!r}", 2)
        value = entries[key.sub]
    print(value if isinstance(value, str) else toml_value(value))
    return 0


# --- changing -------------------------------------------------------------------------

def set_command(args) -> int:
    try:
        key = edit.parse_key(args.key)
    except edit.KeyProblem as exc:
        return local.fail(str(exc), 2)
    path = local.settings_path(args)
    text, existed = edit.read_text(path)
    new_text = edit.set_value(text, key, edit.parse_for(key, args.value), str(path))
    return _finish(args, edit.write(path, text, new_text, existed))


def edit_command(args) -> int:
    path = local.settings_path(args)
    text, existed = edit.read_text(path)
    editor = shlex.split(os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi")
    with tempfile.TemporaryDirectory(prefix="pingjia-edit-") as tmp:
        copy = Path(tmp) / path.name
        copy.write_text(text, encoding="utf-8")
        while True:
            if subprocess.call(editor + [str(copy)]) != 0:
                return local.fail(f"the editor ({editor[0]}) failed; {path} is unchanged")
            new_text = copy.read_text(encoding="utf-8")
            if new_text == text and existed:
                local.emit(args, {"file": str(path), "changed": []}, f"{path}: no change")
                return 0
            try:
                edit.check(new_text, str(path))
                break
            except ConfigError as exc:
                print(f"pingjia: the edited file has problems:\n{exc}", file=sys.stderr)
                if not _again():
                    return local.fail(f"gave up; {path} is unchanged", 2)
    return _finish(args, edit.write(path, text, new_text, existed))


def _again() -> bool:
    if not sys.stdin.isatty():
        return False
    try:
        answer = input("edit again? [Y/n] ").strip().lower()
    except EOFError:
        return False
    return answer in ("", "y", "yes")


def _finish(args, outcome: edit.Outcome) -> int:
    """Report a written change; tell the running terminal to take up the live part."""
    data = outcome.as_dict()
    lines = [f"{outcome.path}: " + ("created" if outcome.created else "written")
             + (f" ({', '.join(outcome.changed)})" if outcome.changed and not outcome.created
                else "")]
    data["reloaded"] = None
    if outcome.live and not args.no_reload:
        data["reloaded"], note = _reload(args, outcome)
        lines.append(note)
    for service, keys in outcome.restart.items():
        lines.append(f"restart needed: systemctl restart {changes.UNITS[service]} "
                     f"(for {', '.join(keys)})")
    local.emit(args, data, "\n".join(lines))
    return 0 if data["reloaded"] is not False else 1


def _reload(args, outcome: edit.Outcome):
    """(True, note) when the terminal took the change, (None, note) when it is not running,
    (False, note) when it refused."""
    settings = schema.load(outcome.path)
    try:
        local.client(args, settings)
    except ConfigError:
        return None, ("not reloaded: no API token to ask a running terminal with (set api.token "
                      "or api.token_file, or pass --token); the terminal reads the file when "
                      "it starts")
    try:
        answer, why = local.ask_terminal(args, settings, lambda c: c.reload_config())
    except ApiError as exc:
        return False, f"the terminal did not reload: {exc}"
    if answer is None:
        return None, f"not reloaded: {why}; it reads the file when it starts"
    applied = answer.get("applied") or []
    return True, ("the terminal reloaded: " + (", ".join(applied) if applied else "nothing new")
                  + " takes effect at the next visit")
