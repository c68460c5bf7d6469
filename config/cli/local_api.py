"""`pingjia invite | visit | cancel | staff | window`: the local API's calls from the
command line, through terminal/client.py's LocalClient.

Host, port and token come as for every command (config/cli/local.py `client`), from a
settings file only where there is one; a --json answer is the terminal's own JSON.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
from pathlib import Path
from typing import Optional

from config import settings as schema
from config.cli import local
from config.errors import ConfigError
from config.levels import NAMES
from terminal.client import ApiError, Unreachable

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = schema.defaults().api.port
DEFAULT_SETTINGS = schema.DEFAULT_PATH


def add_commands(subparsers) -> None:
    """Register the local API commands on the `pingjia` command's subparsers.

    Each command sets `func(args) -> exit code`. Options default to SUPPRESS so a
    top-level option of the same name (`pingjia --config F invite`) is not overwritten.
    """
    common = argparse.ArgumentParser(add_help=False)
    g = common.add_argument_group("connection")
    g.add_argument("--host", default=argparse.SUPPRESS,
                   help=f"terminal address (default: the settings' api.bind, else {DEFAULT_HOST})")
    g.add_argument("--port", type=int, default=argparse.SUPPRESS,
                   help="API port (default: the --config file, else $PINGJIA_PORT, else "
                        f"{DEFAULT_SETTINGS}, else {DEFAULT_PORT})")
    g.add_argument("--token", default=argparse.SUPPRESS,
                   help="API token (default: the --config file, else $PINGJIA_TOKEN, else "
                        f"{DEFAULT_SETTINGS})")
    g.add_argument("--config", default=argparse.SUPPRESS, metavar="FILE",
                   help="settings file to take port and token from")
    g.add_argument("--timeout", type=float, default=argparse.SUPPRESS,
                   help="seconds to wait for the terminal (default 5)")
    g.add_argument("--cacert", default=argparse.SUPPRESS, metavar="FILE",
                   help="HTTPS: the hall CA's certificate (PEM) that signed the terminal's "
                        "(env PINGJIA_CACERT); with it, or with api.tls_cert in the settings, "
                        "the client speaks HTTPS")
    g.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                   help="print the terminal's JSON answer (for scripts)")

    p = subparsers.add_parser("invite", parents=[common], help="invite a rating on the terminal",
                              description="Ask the person at the window to rate one or more "
                                          "businesses (one rating applies to all).")
    p.add_argument("--project-no", help="business serial number (业务流水号)")
    p.add_argument("--task-name", help="service item name (事项名称) for --project-no")
    p.add_argument("--item", action="append", default=[], metavar="PROJECT_NO:TASK_NAME",
                   help="a business; repeat for a batch (批量办件)")
    p.add_argument("--staff-id", help="staff id; default: the signed-in staff member")
    p.add_argument("--staff-name", help="staff name, with --staff-id")
    p.add_argument("--visit-id", help="your id of this visit (default: the terminal makes one)")
    p.add_argument("--demo", action="store_true",
                   help="add a sample business (e.g. 户籍迁入) with a fresh serial number")
    p.set_defaults(func=_invite)

    p = subparsers.add_parser("visit", parents=[common], help="show what became of a visit")
    p.add_argument("visit_id")
    p.set_defaults(func=_visit)

    p = subparsers.add_parser("cancel", parents=[common], help="cancel the open invitation")
    p.set_defaults(func=_cancel)

    staff = subparsers.add_parser("staff", help="sign window staff in or out")
    sub = staff.add_subparsers(dest="staff_action", metavar="ACTION", required=True)
    p = sub.add_parser("signin", parents=[common], help="sign a staff member in")
    p.add_argument("id")
    p.add_argument("name")
    p.set_defaults(func=_sign_in)
    p = sub.add_parser("signout", parents=[common], help="sign the staff member out")
    p.set_defaults(func=_sign_out)

    window = subparsers.add_parser("window", help="pause or open the window")
    sub = window.add_subparsers(dest="window_action", metavar="ACTION", required=True)
    p = sub.add_parser("pause", parents=[common], help="show 暂停服务 and refuse invitations")
    p.add_argument("--message", help="text shown instead of 暂停服务 (up to 40 characters)")
    p.set_defaults(func=_pause)
    p = sub.add_parser("open", parents=[common], help="take invitations again")
    p.set_defaults(func=_open)


add_command = add_commands  # the name config/cli/__init__.py calls


class UsageError(Exception):
    pass


def _settings_of(args) -> Optional[schema.Settings]:
    """The settings for the client (config/cli/local.py `client`): the file named with
    --config, else the one at the default place if there is one, else None (the window
    PC that runs these commands often has none)."""
    if getattr(args, "config", None):
        return schema.load(args.config)
    if not Path(DEFAULT_SETTINGS).is_file():
        return None
    try:
        return schema.load(DEFAULT_SETTINGS)
    except ConfigError as exc:  # the options or the environment may say enough
        print(f"note: {exc}", file=sys.stderr)
        return None


def _run(args, call, show) -> int:
    try:
        client = local.client(args, _settings_of(args))
        answer = call(client)
    except (UsageError, ConfigError) as exc:
        print(f"pingjia: {exc}", file=sys.stderr)
        return 2
    except Unreachable as exc:
        print(f"pingjia: {exc}", file=sys.stderr)
        return 2
    except ApiError as exc:
        if getattr(args, "json", False):
            print(json.dumps({"error": exc.code, "message": exc.message, "status": exc.status},
                             ensure_ascii=False))
        print(f"pingjia: {exc}", file=sys.stderr)
        return 1
    if getattr(args, "json", False):
        print(json.dumps(answer, ensure_ascii=False, indent=2))
    else:
        print(show(answer))
    return 0


def _items_from_args(args) -> list[dict]:
    items = []
    if args.project_no or args.task_name:
        if not (args.project_no and args.task_name):
            raise UsageError("--project-no and --task-name go together")
        items.append({"project_no": args.project_no, "task_name": args.task_name})
    for spec in args.item:
        sep = min((i for i in (spec.find(":"), spec.find("：")) if i > 0), default=-1)
        if sep < 0 or not spec[sep + 1:].strip():
            raise UsageError(f"--item {spec!r}: write PROJECT_NO:TASK_NAME")
        items.append({"project_no": spec[:sep].strip(), "task_name": spec[sep + 1:].strip()})
    if args.demo:
        from terminal.catalogue import sample_business  # here: only --demo needs the catalogue
        items.append(dataclasses.asdict(sample_business(random.Random())))
    if not items:
        raise UsageError("say what to rate: --project-no and --task-name, --item, or --demo")
    return items


def _invite(args) -> int:
    try:
        items = _items_from_args(args)
        if bool(args.staff_id) != bool(args.staff_name):
            raise UsageError("--staff-id and --staff-name go together")
    except UsageError as exc:
        print(f"pingjia: {exc}", file=sys.stderr)
        return 2
    staff = (args.staff_id, args.staff_name) if args.staff_id else None
    names = "; ".join(f"{i['task_name']} [{i['project_no']}]" for i in items)
    return _run(args, lambda c: c.invite(items, staff=staff, visit_id=args.visit_id),
                lambda a: f"invited: visit {a['visit_id']} is open on the screen — {names}"
                + (f"\n{describe_superseded(a['superseded'])}" if a.get("superseded") else ""))


def describe_superseded(superseded: dict) -> str:
    """What became of the invitation a new one replaced (the 201 answer's `superseded`)."""
    visit = superseded.get("visit_id")
    if superseded.get("state") == "rated":
        return f"previous invitation {visit} ended: its rating was stored (superseded)"
    return f"previous invitation {visit} stored as unrated (superseded)"


def _visit(args) -> int:
    return _run(args, lambda c: c.visit(args.visit_id), describe_visit)


def describe_visit(a: dict) -> str:
    state = a.get("state")
    if state == "rated":
        level = a.get("level")
        tags = ", ".join(a.get("tags") or []) or "none"
        return (f"visit {a['visit_id']}: rated {level} ({NAMES.get(level, '?')}) at "
                f"{a.get('rated_at')}; reasons: {tags}")
    if state == "unrated":
        return f"visit {a['visit_id']}: not rated ({a.get('reason')})"
    return f"visit {a['visit_id']}: {state}, waiting for the person to rate"


def _cancel(args) -> int:
    return _run(args, lambda c: c.cancel(),
                lambda a: f"cancelled: visit {a['visit_id']} is closed ({a['state']})")


def _sign_in(args) -> int:
    return _run(args, lambda c: c.sign_in(args.id, args.name),
                lambda a: f"signed in: {a['staff']['name']} ({a['staff']['id']})")


def _sign_out(args) -> int:
    return _run(args, lambda c: c.sign_out(), lambda a: "signed out")


def _pause(args) -> int:
    return _run(args, lambda c: c.window("paused", args.message),
                lambda a: "window paused" + (" once the current rating is over"
                                             if a.get("effective") == "after_current" else ""))


def _open(args) -> int:
    return _run(args, lambda c: c.window("open"), lambda a: "window open")


def main(argv=None) -> int:
    """These commands alone (`python -m config.cli.local_api invite --demo`)."""
    parser = argparse.ArgumentParser(prog="pingjia", description="Drive a terminal's local API.")
    add_commands(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
