"""The simulator's console: keys typed or piped in (buttons, invitations, the simulated
card reader, the network switch), demo invitations, and the messages under the panel.

The launcher (simulate.py) starts it beside a running terminal; it drives the terminal
only as a person or the window's system would: buttons and the flow's own events.
"""
from __future__ import annotations

import logging
import os
import random
import signal
import sys
import threading
import time
from collections import deque
from pathlib import Path

from config.cli.local_api import describe_superseded
from config.cli.simulate_central import Central
from terminal import flow
from terminal.catalogue import sample_businesses, sample_staff

log = logging.getLogger("pingjia.simulate")

HOLD_KEYS = {"!": 1, "@": 2, "#": 3, "$": 4, "%": 5}
HELP = "键 1-5 评价(5=非常满意)  Shift+1-5 长按  n 新邀请  o 断网/联网  q 退出"
KIOSK_HELP = ("键 c 放身份证  f 放外国人永久居留证  u 放读不出的卡  x 取走卡/拔插读卡器  "
              "1-5 按键  n 自助机邀请  o 断网/联网  q 退出")
SCROLL = 5  # messages kept in view under the console panel
UNREADABLE_SW3 = 0x41  # "card moved during the read": the commonest failed read


class KeyInput:
    """Standard input as single keys. A terminal is switched to cbreak mode (each key at
    once, no echo; Ctrl-C still interrupts) until `restore()`, which the command calls
    on every way out; a pipe is read as it is."""

    def __init__(self, stream):
        self._saved = None
        try:
            self.fd = stream.fileno()
            self.is_tty = os.isatty(self.fd)
        except (AttributeError, ValueError, OSError):
            self.fd, self.is_tty = None, False

    @property
    def background(self) -> bool:
        """Started with `&` from a shell: touching its terminal would stop the process
        (SIGTTOU, SIGTTIN), so it reads no keys there."""
        if not self.is_tty:
            return False
        try:
            return os.tcgetpgrp(self.fd) != os.getpgrp()
        except OSError:  # not our controlling terminal: no job control applies
            return False

    def cbreak(self) -> None:
        if not self.is_tty or self._saved is not None or self.background:
            return
        import termios
        import tty
        try:
            self._saved = termios.tcgetattr(self.fd)
            tty.setcbreak(self.fd)
        except termios.error:
            self._saved = None

    def restore(self) -> None:
        if self._saved is None:
            return
        import termios
        try:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
        except termios.error:
            pass  # the terminal went away
        self._saved = None

    def read(self) -> str:
        """The next keys; blocks until there are some; "" at the end of the input."""
        if self.fd is None:
            return ""
        try:
            data = os.read(self.fd, 64)
        except OSError:
            return ""
        return data.decode("utf-8", "ignore")


class Simulator:
    """Keyboard, demo invitations, the card reader's keys and the messages around a
    running terminal."""

    def __init__(self, runtime, args, stop: threading.Event, stdin=None, out=None,
                 central: Central | None = None, keys: "KeyInput | None" = None,
                 log_file: "Path | None" = None):
        self.runtime = runtime
        self.terminal = runtime.terminal
        self.args = args
        self.stop = stop
        self.central = central
        self.keys = keys or KeyInput(stdin if stdin is not None else sys.stdin)
        self.out = out or sys.stdout
        self.log_file = log_file
        self.rng = random.Random()
        self.kiosk = runtime.settings.device.mode == "kiosk"
        # the console panel on a terminal: messages go under it, never printed over it
        self.console = bool(getattr(runtime.display.device, "is_tty", False))
        self.messages: deque = deque(maxlen=SCROLL)
        self._screen = None
        self._help = self.help
        self.terminal.listeners.append(self._stored)

    @property
    def help(self) -> str:
        return KIOSK_HELP if self.kiosk else HELP

    def start(self) -> None:
        api = self.runtime.api
        self._say(f"local API {api.scheme}://127.0.0.1:{api.port} token {self.args.token}")
        self._say(f"database {self.runtime.store.path}")
        if self.central is not None:
            self._say(f"reference receiver {self.central.url} (database "
                      f"{self.central.dir / 'receiver.db'}); sync agent running")
        else:
            self._say("no receiver, no sync agent (--no-sync): records stay in the outbox")
        reader = self.runtime.reader
        if reader is not None:
            self._say(f"simulated ID-card reader on {reader.port}")
        if self.log_file is not None:
            self._say(f"log file {self.log_file}")
        if self.console:
            self._watch_size()
        if not self.kiosk:
            # A window has someone at it: without staff, invitations would be refused
            # (site.require_staff). PUT/DELETE /v1/staff change it like at a real window.
            staff_id, name = sample_staff(self.rng)
            self.terminal.post(flow.SignIn(flow.Staff(staff_id, name)))  # the loop starts later
            self._say(f"staff {name} ({staff_id}) signed in")
        # (keys only after the sign-in is queued: keys typed or piped before the start
        # would otherwise invite before anyone is signed in)
        if self.keys.background:
            self._say("running in the background: no keys are read (the local API serves)")
        else:
            self.keys.cbreak()
            threading.Thread(target=self._read_keys, name="sim-keys", daemon=True).start()
        if self.args.demo:
            threading.Thread(target=self._demo, name="sim-demo", daemon=True).start()
        self._say("ready: " + self.help)

    def _watch_size(self) -> None:
        """The panel's top border warns while the window is too small (drivers/console.py);
        a resize draws everything again."""
        device = self.runtime.display.device
        try:
            # redraw on another thread: the handler runs on the event thread, which may be
            # drawing at that moment
            signal.signal(signal.SIGWINCH, lambda *_: threading.Thread(
                target=device.redraw, name="sim-resize", daemon=True).start())
        except (ValueError, OSError, AttributeError):  # not the main thread, or no SIGWINCH
            pass

    # --- the event thread, after every turn ---------------------------------------

    def on_turn(self) -> None:
        """Follow the screen: on a list screen the key line says what each button does."""
        screen = type(self.terminal.snapshot().screen)
        if screen is self._screen:
            return
        self._screen = screen
        line = self.list_keys(screen)
        self._help = line or self.help
        if self.console:
            self._show()
        elif line:
            self._print(line)

    def list_keys(self, screen) -> str:
        """Which key does what on the reason list and the kiosk's business list."""
        from terminal.screens.kiosk import CAPS as KIOSK_CAPS  # the caps the screens draw
        from terminal.screens.window import ROLE_TEXT

        order = self.runtime.settings.buttons.order
        if screen is flow.Tagging:
            roles = [ROLE_TEXT[flow.TAG_ROLES[i]] for i in range(len(order))]
            what = "原因页"
        elif screen is flow.Choosing:
            roles = [caps[0] for caps in KIOSK_CAPS]
            what = "业务列表"
        else:
            return ""
        return what + ": " + "  ".join(f"键{b} {role}" for b, role in zip(order, roles))

    # --- keys -------------------------------------------------------------------

    def _read_keys(self) -> None:
        while not self.stop.is_set():
            data = self.keys.read()
            if not data:  # end of input: keep serving the API
                return
            for ch in data:
                try:
                    self.key(ch)
                except Exception:  # a key must never end the simulator
                    log.exception("key %r failed", ch)

    def key(self, ch: str) -> None:
        if ch in "12345":
            self.runtime.panel.simulate(int(ch))
        elif ch in HOLD_KEYS:
            self.runtime.panel.simulate(HOLD_KEYS[ch], hold=True)
        elif ch == "n":
            self.invite_sample()
        elif ch == "o":
            self.toggle_network()
        elif ch in "cfux":
            self.card_key(ch)
        elif ch == "q" and self.keys.is_tty:
            self.stop.set()

    def card_key(self, ch: str) -> None:
        """The simulated reader's keys: c, f and u put a card on it, x takes it away."""
        reader = self.runtime.reader
        sim = reader.sim if reader is not None else None
        if sim is None:
            self._say("no simulated card reader: use --mode kiosk")
            return
        from drivers.idcard.simulated import foreign_2023_card, resident_card
        if ch == "c":
            sim.place(resident_card())
            self._say("resident ID card on the reader (sample holder 张*)")
        elif ch == "f":
            sim.place(foreign_2023_card())
            self._say("foreign permanent-resident card on the reader (sample holder 玛*)")
        elif ch == "u":
            sim.inject(UNREADABLE_SW3)  # the next read fails as if the card had moved
            sim.place(resident_card())
            self._say("a card the reader cannot read is on the reader")
        elif sim.card_present:
            sim.remove()
            self._say("card taken away")
        elif sim.plugged:
            sim.unplug()
            self._say("reader unplugged (x again plugs it back)")
        else:
            sim.replug()
            self._say("reader plugged back in")

    def toggle_network(self) -> None:
        if self.central is None:
            self._say("no receiver to take off line (--no-sync)")
            return
        online = self.central.toggle()
        self._say("receiver on line again" if online else
                  "receiver off line: uploads wait, kiosk lookups fail (o again: back on line)")

    # --- demo -------------------------------------------------------------------

    def invite_sample(self):
        items = sample_businesses(self.rng, 2 if self.rng.random() < 0.2 else 1)  # 联办件 now and then
        visit_id = f"demo-{int(time.time() * 1000)}"
        reply = self.terminal.request(lambda rid: flow.Invite(visit_id, items, None, rid))
        if reply.status != 201:
            self._say(f"invitation refused: {reply.body.get('message')}")
        elif reply.body.get("superseded"):
            self._say(describe_superseded(reply.body["superseded"]))
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
            self._say(f"stored #{r['seq']} {what} {r['task_name']} {r['project_no']} "
                      f"[{r['channel']}{', real name' if r['real_name'] else ''}]")

    def _say(self, text: str) -> None:
        if self.console:
            self.messages.append(text)
            self._show()
        else:
            self._print(text)

    def _show(self) -> None:
        """The key line, then the last messages, newest last."""
        self.runtime.display.set_status("\n".join([self._help, *self.messages]))

    def _print(self, text: str) -> None:
        print(f"[pingjia] {text}", file=self.out, flush=True)
