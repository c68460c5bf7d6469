"""`pingjia terminal`: the terminal service (systemd runs it as pingjia-terminal.service)."""
from __future__ import annotations

import logging
import signal
import sys
import threading

from config import settings as config_settings

log = logging.getLogger("pingjia.terminal")


def add_command(subparsers) -> None:
    p = subparsers.add_parser("terminal", help="run the terminal service (buttons, display, API)")
    p.set_defaults(func=run_command)


def startup_errors() -> tuple:
    """Errors that mean "fix the installation", reported in one line, never a traceback."""
    from drivers.fonts import FontNotFound
    from drivers.pins import HardwareError
    from terminal.secret import SecretError
    from terminal.store import StorageError
    errors = [FontNotFound, HardwareError, SecretError, StorageError]
    try:
        from drivers.display import DisplayError
        errors.append(DisplayError)
    except ImportError:
        pass
    return tuple(errors)


def run_command(args) -> int:
    from terminal.runtime import Runtime

    settings = config_settings.load(args.config or config_settings.DEFAULT_PATH)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        runtime = Runtime(settings)
    except startup_errors() as exc:
        print(f"pingjia terminal: {exc}", file=sys.stderr)
        return 1
    log.warning("terminal %s started (%s mode, window %s)", settings.device.id,
                settings.device.mode, settings.site.window_no)
    try:
        runtime.run(stop)
    finally:
        runtime.close()
    return 0
