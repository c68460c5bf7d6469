"""`pingjia simulate`: the product on simulated hardware.

The real terminal (flow, screens, store, local API) runs with gpiozero's MockFactory for
the buttons and a simulated display; keys 1-5 press the buttons (5 = 非常满意), and
invitations come from the sample catalogue (`--demo`) or from `pingjia invite` in
another shell. `--headless` draws nothing but still reads keys from standard input and
serves the local API, for scripts and outside checks.
"""
from __future__ import annotations

import argparse
import logging
import os
import random
import signal
import sys
import threading
import time
from pathlib import Path

from config import settings as config_settings
from terminal import flow
from terminal.catalogue import sample_business, sample_staff
from terminal.secret import ensure_sim_secret

log = logging.getLogger("pingjia.simulate")

SIM_TOKEN = "pingjia-sim"
HOLD_KEYS = {"!": 1, "@": 2, "#": 3, "$": 4, "%": 5}
HELP = "键 1-5 评价(5=非常满意)  Shift+1-5 长按  n 新邀请  q 退出"


def add_command(subparsers) -> None:
    p = subparsers.add_parser("simulate", help="run the evaluator on simulated hardware",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--demo", action="store_true",
                   help="invite sample businesses by itself whenever the window is idle")
    p.add_argument("--headless", action="store_true",
                   help="draw nothing; keys still come from standard input")
    p.add_argument("--display", choices=("console", "pygame", "capture", "gifanim", "dummy"),
                   help="simulated display (default: console, or dummy when headless)")
    p.add_argument("--frames", metavar="DIR", help="capture/gifanim: where frames go")
    p.add_argument("--data-dir", default="sim-data", help="database and secret (default ./sim-data)")
    p.add_argument("--port", type=int, default=8410, help="local API port (default 8410)")
    p.add_argument("--token", default=SIM_TOKEN, help=f"local API token (default {SIM_TOKEN})")
    p.add_argument("--mode", choices=("window", "kiosk"), help="override device.mode")
    p.set_defaults(func=run_command)


def sim_settings(base, args):
    """Explicit simulation choices on top of the given settings."""
    data_dir = Path(args.data_dir).resolve()
    driver = args.display or ("dummy" if args.headless else "console")
    values = {
        "device": {"data_dir": str(data_dir), "secret_file": str(data_dir / "secret")},
        "buttons": {"pin_factory": "mock"},
        "display": {"driver": driver, "output_dir": args.frames or str(data_dir / "frames")},
        "api": {"bind": "127.0.0.1", "port": args.port, "token": args.token, "token_file": ""},
        "sound": {"driver": "none"},
    }
    if args.mode:
        values["device"]["mode"] = args.mode
    return base.with_values(values, source=base.source + " + simulate")


def run_command(args) -> int:
    from terminal.runtime import Runtime  # heavy imports only for this command

    base = config_settings.load(args.config) if args.config else config_settings.defaults()
    settings = sim_settings(base, args)
    data_dir = Path(settings.device.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = ensure_sim_secret(Path(settings.device.secret_file))

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    from terminal.serve import startup_errors
    try:
        runtime = Runtime(settings, secret=secret)
    except startup_errors() as exc:
        print(f"pingjia simulate: {exc}", file=sys.stderr)
        return 1
    try:
        sim = Simulator(runtime, args, stop)
        sim.start()
        runtime.run(stop)
    finally:
        runtime.close()
        _restore_tty()
    return 0


_tty_saved = None


def _cbreak(fd) -> None:
    global _tty_saved
    import termios
    import tty
    _tty_saved = (fd, termios.tcgetattr(fd))
    tty.setcbreak(fd)


def _restore_tty() -> None:
    global _tty_saved
    if _tty_saved:
        import termios
        fd, attrs = _tty_saved
        termios.tcsetattr(fd, termios.TCSADRAIN, attrs)
        _tty_saved = None


class Simulator:
    """Keyboard, demo invitations and the status line around a running terminal."""

    def __init__(self, runtime, args, stop: threading.Event, stdin=None, out=None):
        self.runtime = runtime
        self.terminal = runtime.terminal
        self.args = args
        self.stop = stop
        self.stdin = stdin if stdin is not None else sys.stdin
        self.out = out or sys.stdout
        self.rng = random.Random()
        self.interactive = not args.headless and self.stdin.isatty()
        self.terminal.listeners.append(self._stored)

    def start(self) -> None:
        api = self.runtime.api
        self._say(f"local API http://127.0.0.1:{api.port} token {self.args.token}")
        self._say(f"database {self.runtime.store.path}")
        if self.interactive:
            _cbreak(self.stdin.fileno())
        threading.Thread(target=self._keys, name="sim-keys", daemon=True).start()
        # A window has someone at it: without staff, invitations would be refused
        # (site.require_staff). PUT/DELETE /v1/staff change it like at a real window.
        staff_id, name = sample_staff(self.rng)
        self.terminal.post(flow.SignIn(flow.Staff(staff_id, name)))  # the loop starts later
        self._say(f"staff {name} ({staff_id}) signed in")
        if self.args.demo:
            threading.Thread(target=self._demo, name="sim-demo", daemon=True).start()
        self._say("ready: " + HELP)

    # --- keys -------------------------------------------------------------------

    def _keys(self) -> None:
        fd = self.stdin.fileno()
        while not self.stop.is_set():
            try:
                data = os.read(fd, 64)
            except OSError:
                return
            if not data:  # end of input: keep serving the API
                return
            for ch in data.decode("utf-8", "ignore"):
                self.key(ch)

    def key(self, ch: str) -> None:
        if ch in "12345":
            self.runtime.panel.simulate(int(ch))
        elif ch in HOLD_KEYS:
            self.runtime.panel.simulate(HOLD_KEYS[ch], hold=True)
        elif ch == "n":
            self.invite_sample()
        elif ch == "q" and self.interactive:
            self.stop.set()

    # --- demo -------------------------------------------------------------------

    def invite_sample(self):
        items = (sample_business(self.rng),)
        if self.rng.random() < 0.2:  # a joint case (联办件) now and then
            items += (sample_business(self.rng),)
        visit_id = f"demo-{int(time.time() * 1000)}"
        reply = self.terminal.request(lambda rid: flow.Invite(visit_id, items, None, rid))
        if reply.status != 201:
            self._say(f"invitation refused: {reply.body.get('message')}")
        return reply

    def _demo(self) -> None:
        idle_since = None
        while not self.stop.wait(0.5):
            state = self.terminal.snapshot()
            if isinstance(state.screen, flow.Idle) and not state.paused:
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since >= 3:
                    self.invite_sample()
                    idle_since = None
            else:
                idle_since = None

    # --- output -----------------------------------------------------------------

    def _stored(self, records) -> None:
        for r in records:
            what = f"level {r['level']}" if r["kind"] == "rating" else f"unrated ({r['unrated_reason']})"
            self._say(f"stored #{r['seq']} {what} {r['task_name']} {r['project_no']}")

    def _say(self, text: str) -> None:
        display = self.runtime.display
        if self.interactive and hasattr(display, "set_status"):
            display.set_status(text)
        else:
            print(f"[pingjia] {text}", file=self.out, flush=True)
