"""The lean entry of a service (`python -m terminal`, `python -m agent`): its options,
`$PINGJIA_CONFIG`, logging, and how it ends, without the rest of the `pingjia` command
(which imports every command's module before it dispatches)."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Callable

from config.errors import ConfigError, os_error_hint


def service_main(name: str, description: str,
                 add_arguments: Callable[[argparse.ArgumentParser], None],
                 run_command: Callable[[argparse.Namespace], int], argv=None) -> int:
    """Run `run_command` with the options `add_arguments` declares. Exit 2 on a settings
    error (systemd does not restart it: RestartPreventExitStatus=2), 1 with one line on
    an OS error (as `pingjia` reports it), 130 on Ctrl-C."""
    parser = argparse.ArgumentParser(prog=f"python -m {name}", description=description)
    add_arguments(parser)
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    args = parser.parse_args(argv)
    if not getattr(args, "config", None):
        args.config = os.environ.get("PINGJIA_CONFIG")
    logging.basicConfig(level=logging.WARNING - 10 * min(args.verbose, 2),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return run_command(args)
    except ConfigError as exc:
        print(f"pingjia {name}: settings error:\n{exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        if args.verbose:
            logging.getLogger(f"pingjia.{name}").exception("the %s failed", name)
        print(f"pingjia {name}: {exc} ({os_error_hint(exc)})", file=sys.stderr)
        return 1
