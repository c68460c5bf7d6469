"""The terminal service's start-up and `pingjia out-of-service`; config/cli/serve.py
registers both commands.

systemd runs the service as `python -m terminal` (pingjia-terminal.service), the same as
`pingjia terminal` without the rest of the CLI: `pingjia` imports every command's module
before it dispatches, about 1.7 MiB of resident memory the service would keep for
nothing. So the service's options and its `main` live here, below the command line.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time

from config import check as settings_check
from config import settings as config_settings
from config.errors import ConfigError
from terminal.entry import service_main
from terminal.heap import give_back_memory
from terminal.lean import hash_without_openssl
from terminal.sdnotify import Notifier

log = logging.getLogger("pingjia.terminal")

# how long one piece of start-up work (the integrity check, 2000 salvaged records) may
# take on a slow SD card before systemd gives up on the start
START_EXTEND_S = 120


def ended_cleanly(env) -> bool:
    """systemd.exec(5): ExecStopPost= sees how the main process ended."""
    return env.get("SERVICE_RESULT") == "success" and env.get("EXIT_CODE", "exited") == "exited"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The service's options, for `pingjia terminal` and `python -m terminal` alike."""
    # SUPPRESS: `pingjia --config F terminal` keeps F unless `terminal --config` names another
    p.add_argument("--config", default=argparse.SUPPRESS, metavar="FILE",
                   help=f"settings file (default {config_settings.DEFAULT_PATH}, env PINGJIA_CONFIG)")
    p.add_argument("--secret-file", metavar="FILE",
                   help="read the device secret from FILE ('-': standard input) instead of "
                        "the systemd credential or device.secret_file: for a run by hand "
                        "(docs/install.md)")


def main(argv=None) -> int:
    """`python -m terminal`: the service without the rest of the `pingjia` CLI."""
    return service_main("terminal", "Pingjia terminal service (buttons, display, API)",
                        add_arguments, run_command, argv)


def out_of_service_command(args) -> int:
    from drivers.display import open_display
    from drivers.fonts import find_fonts
    from terminal import screens

    if args.if_failed and ended_cleanly(os.environ):
        return 0
    settings = config_settings.load(args.config or config_settings.DEFAULT_PATH)
    try:
        fonts = find_fonts(tuple(settings.display.fonts))
        display = open_display(settings.display)
    except startup_errors() as exc:
        print(f"pingjia out-of-service: {exc}", file=sys.stderr)
        return 1
    final = screens.render_out_of_service(display.size, display.mode, fonts)
    display.close(final)
    if display.last_error:
        print(f"pingjia out-of-service: {display.last_error}", file=sys.stderr)
        return 1
    why = os.environ.get("SERVICE_RESULT")
    log.warning("out-of-service frame drawn%s", f" (the terminal ended: {why})" if why else "")
    return 0


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


class LoopHeartbeat:
    """Called by the event loop after every turn: READY=1 on the first (the first frame
    is drawn by then), then WATCHDOG=1 at most once per `watchdog_interval_s`. It runs
    on the loop's own thread, so a stuck loop stops the pings and systemd restarts
    the service (WatchdogSec= in systemd/pingjia-terminal.service)."""

    def __init__(self, notifier: Notifier, status: str, clock=time.monotonic):
        self.notifier = notifier
        self.status = status
        self.clock = clock
        self.ready = False
        self._next_ping = None

    @property
    def interval_s(self):
        """How long the loop may sleep at most (None: no watchdog): half the ping
        interval, so a ping is never more than half an interval late."""
        interval = self.notifier.watchdog_interval_s
        return interval / 2 if interval is not None else None

    def __call__(self) -> None:
        if not self.ready:
            self.ready = True
            self.notifier.ready(self.status)
        interval = self.notifier.watchdog_interval_s
        now = self.clock()
        if interval is not None and (self._next_ping is None or now >= self._next_ping):
            self.notifier.watchdog()
            self._next_ping = now + interval


def run_command(args) -> int:
    notifier = Notifier()
    try:  # the same check as `pingjia config validate`, the port probe included
        checked = settings_check.check_file(args.config or config_settings.DEFAULT_PATH,
                                            settings_check.START)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"pingjia terminal: {problem}", file=sys.stderr)
        notifier.status(f"failed: {exc.problems[0]}")
        return 2
    settings = checked.settings  # its warnings (a short token) the API's load_token logs
    # before anything that hashes is imported: a sha256 device needs no OpenSSL
    hash_without_openssl(settings.device.hash_alg)
    from terminal.runtime import Runtime
    stop = threading.Event()

    def on_signal(signum, frame):
        notifier.stopping()  # systemd: the stop is ours, not a crash
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    notifier.status("starting: checking the database, opening the hardware")

    def starting(text: str) -> None:
        # a salvage reports every few thousand records; each report buys time to the next
        notifier.extend_timeout(START_EXTEND_S, f"starting: {text}")

    secret = None
    if args.secret_file:
        from terminal.secret import read_secret
        try:
            secret = read_secret(args.secret_file)
        except startup_errors() as exc:
            print(f"pingjia terminal: {exc}", file=sys.stderr)
            return 1
    try:
        runtime = Runtime(settings, secret=secret, progress=starting)
    except startup_errors() as exc:
        print(f"pingjia terminal: {exc}", file=sys.stderr)
        notifier.status(f"failed: {exc}")
        return 1
    log.warning("terminal %s started (%s mode, window %s)", settings.device.id,
                settings.device.mode, settings.site.window_no)
    # the start-up's passing work (settings check, integrity check, the font search, the
    # API's schema checks compiled) leaves about 1.4 MiB of freed heap mapped otherwise
    give_back_memory()
    status = (f"serving window {settings.site.window_no} ({settings.device.mode}), "
              f"local API port {settings.api.port}")
    if runtime.salvage is not None:
        status += "; " + runtime.salvage.summary()
    try:
        runtime.run(stop, on_turn=LoopHeartbeat(notifier, status))
    finally:
        notifier.status("stopping: out-of-service frame, releasing the hardware")
        runtime.close()
    return 0
