"""The `pingjia` command: one entry point for services, simulator and technician tools.

Each command group is a module of this package (config/cli/) that registers itself with
`add_command(subparsers)`; this file only dispatches. The commands sit on top of every
layer (settings, drivers, terminal, agent) and nothing below imports them. Exit codes: 0 success, 1 the
operation failed, 2 usage or settings error.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from config.errors import ConfigError, os_error_hint

# module that registers the command(s), in the order --help lists them
COMMANDS = (
    "config.cli.simulate",
    "config.cli.serve",
    "config.cli.local_api",
    "config.cli.commands",
    "config.cli.status",
    "config.cli.hwtest",
    "config.cli.enroll",
    "config.cli.outbox",
    "config.cli.doctor",
    "config.cli.idcard",
    "config.cli.agent",
    "config.cli.receiver",
)


class Parser(argparse.ArgumentParser):
    """An argument the command does not know is refused by that (sub)command, so the
    usage shown is its own (`pingjia test network --port 1` shows the usage of
    `pingjia test network`, not of `pingjia`). Subparsers are made of this class too."""

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error("unrecognized arguments: " + " ".join(extras))
        return namespace, extras


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="pingjia", description="Pingjia 好差评 evaluator: services, simulator and technician tools.")
    parser.add_argument("--config", default=os.environ.get("PINGJIA_CONFIG"),
                        help="settings file (default /etc/pingjia/pingjia.toml for services; "
                             "env PINGJIA_CONFIG)")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).add_command(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING - 10 * min(args.verbose, 2),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"pingjia: settings error:\n{exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `pingjia status | head`: the reader left; say nothing more and leave no traceback
        # (the interpreter would print one when it flushes stdout at exit)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:
        # the last guard: a file, port or device the command could not use, in one line
        # (the commands name the usual ones themselves, with what to do)
        if args.verbose:
            logging.getLogger("pingjia").exception("%s failed", args.command)
        print(f"pingjia {args.command}: {exc} ({os_error_hint(exc)})", file=sys.stderr)
        return 1
