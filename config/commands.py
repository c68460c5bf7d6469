"""`pingjia config ...`: look at and check the settings file."""
from __future__ import annotations

import json
import sys

from config import settings as schema
from config import tags as tag_lists
from config.document import toml_value


def add_command(subparsers) -> None:
    p = subparsers.add_parser("config", help="show or check the settings")
    sub = p.add_subparsers(dest="config_command", metavar="ACTION")
    v = sub.add_parser("validate", help="check the settings file (and its tag list)")
    v.set_defaults(func=validate)
    s = sub.add_parser("show", help="print the effective settings")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=show)
    g = sub.add_parser("get", help="print one setting, e.g. site.window_no")
    g.add_argument("key")
    g.set_defaults(func=get)
    p.set_defaults(func=lambda args: p.print_help() or 2)


def _load(args) -> schema.Settings:
    return schema.load(args.config or schema.DEFAULT_PATH)


def validate(args) -> int:
    settings = _load(args)
    tag_lists.for_settings(settings)
    print(f"{settings.source}: ok")
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
    section, _, key = args.key.partition(".")
    if section not in data or key not in data[section]:
        print(f"pingjia: no setting {args.key!r}", file=sys.stderr)
        return 2
    value = data[section][key]
    print(value if isinstance(value, str) else toml_value(value))
    return 0
