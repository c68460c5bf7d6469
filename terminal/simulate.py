"""`pingjia simulate`: the whole product on one machine, on simulated hardware.

Three parts run together, so that a rating made here reaches a central system:

- the real terminal (flow, screens, store, local API) with gpiozero's MockFactory for the
  buttons and a simulated display;
- the reference receiver (`agent.receiver.Receiver`) on 127.0.0.1, with its own database
  under DATA_DIR/receiver/, this device registered with the device secret, and a sample
  lookup table for the kiosk (fictitious card holders and their finished businesses);
- the sync agent (`agent.sync.Agent`) in a thread, uploading every record to it
  (central.url is pointed at the embedded receiver, whatever --config says).

`--no-sync` runs the terminal alone (records wait in its outbox; kiosk lookups then go to
central.url of --config, or say 暂时无法查询). `--headless` draws nothing but still reads
keys from standard input and serves the local API, for scripts and outside checks:

    pingjia simulate --headless --data-dir DIR --port PORT --token TOKEN

Keys act at once, without Enter: typed on a terminal (also with --headless, which then
switches the terminal to single keys and back on exit), or as characters on a pipe
(newlines are ignored):
  1-5      press a rating button (5 = 非常满意); Shift+1-5 (!@#$%) holds it; on the
           reason screen the buttons are, left to right (keys 5 4 3 2 1): 上移 下移
           选择 返回 提交 (the line under the panel says so)
  n        invite a sample business (window), or a kiosk-app invitation (kiosk); an
           invitation still open is stored as unrated (superseded), and it says so
  o        take the receiver off line / back on line (network down)
  q        quit (on a terminal; from a pipe, end the input or send SIGTERM)
kiosk mode (--mode kiosk) adds the simulated ID-card reader, spoken to through the real
driver over a pseudo-terminal:
  c        put the sample resident ID card (居民身份证) on the reader
  f        put the sample foreign permanent-resident card (外国人永久居留身份证) on it
  u        put a card that cannot be read (the read fails, SW3 41)
  x        take the card away; with no card on the reader, unplug or replug the reader

What happens is said in a few lines under the panel (the console display on a terminal)
or printed plainly, one line each, to standard output (every other display, or output
to a pipe): the API address and token, the database, the receiver, "stored #N ...".
The log goes to DATA_DIR/simulate.log (-v copies it to standard error). The console
panel of a 128x64 display needs a terminal of 130 columns and 40 rows; the simulator
says so when the window is smaller.
"""
from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import random
import signal
import sys
import threading
import time
from collections import deque
from datetime import datetime, timedelta
from pathlib import Path

from config import local
from config import settings as config_settings
from terminal import flow
from terminal.catalogue import sample_businesses, sample_staff
from terminal.client import describe_superseded
from terminal.clock import CHINA
from terminal.secret import ensure_sim_secret

log = logging.getLogger("pingjia.simulate")

SIM_TOKEN = "pingjia-simulator-demo-token"
HOLD_KEYS = {"!": 1, "@": 2, "#": 3, "$": 4, "%": 5}
HELP = "键 1-5 评价(5=非常满意)  Shift+1-5 长按  n 新邀请  o 断网/联网  q 退出"
KIOSK_HELP = ("键 c 放身份证  f 放外国人永久居留证  u 放读不出的卡  x 取走卡/拔插读卡器  "
              "1-5 按键  n 自助机邀请  o 断网/联网  q 退出")
RECEIVER_DIR = "receiver"
SCROLL = 5  # messages kept in view under the console panel
UNREADABLE_SW3 = 0x41  # "card moved during the read": the commonest failed read

# The receiver's sample lookup: what each fictitious card holder finished today.
# (task_name, task_code, dept_name, staff_name, hours before now)
SAMPLE_FINISHED = {
    "resident": (
        ("不动产登记（二手房买卖转移登记）", "11330106002489123X4330110000", "区自然资源和规划分局", "陈静", 3),
        ("社会保障卡申领", "11330106002491234K4330140010", "区人力资源和社会保障局", "李建国", 2),
        ("营业执照变更登记", "11330106MB1234567G4330130011", "区市场监督管理局", "王芳", 1),
    ),
    "foreign_2023": (
        ("外国人工作许可延期", "11330106002494567P4330180012", "区科学技术局", "陈静", 1),
    ),
}


def add_command(subparsers) -> None:
    p = subparsers.add_parser("simulate", help="run the evaluator, the receiver and the sync "
                              "agent on simulated hardware", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--demo", action="store_true",
                   help="invite sample businesses by itself whenever the window is idle")
    p.add_argument("--headless", action="store_true",
                   help="draw nothing; keys still come from standard input")
    p.add_argument("--display", choices=("console", "pygame", "capture", "gifanim", "dummy"),
                   help="simulated display (default: console, or dummy when headless)")
    p.add_argument("--frames", metavar="DIR", help="capture/gifanim: where frames go")
    p.add_argument("--data-dir", default="sim-data",
                   help="database, secret and the receiver's files (default ./sim-data)")
    p.add_argument("--port", type=int, default=8410, help="local API port (default 8410)")
    p.add_argument("--token", default=SIM_TOKEN, help=f"local API token (default {SIM_TOKEN})")
    p.add_argument("--mode", choices=("window", "kiosk"),
                   help="override device.mode (kiosk: simulated ID-card reader, keys c f u x)")
    p.add_argument("--no-sync", action="store_true",
                   help="run the terminal alone: no reference receiver, no sync agent")
    p.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                   help="let a browser page from ORIGIN (e.g. http://127.0.0.1:8080) call the "
                        "local API (api.allow_origins); repeatable")
    p.add_argument("--receiver-port", type=int, default=0,
                   help="port of the embedded receiver (default: any free port)")
    p.add_argument("--sound", choices=("none", "alsa"), default="none",
                   help="alsa: speak the prompts aloud (sound.device of --config, default "
                        "\"default\"); default none")
    p.add_argument("--sound-dir", metavar="DIR",
                   help="write every prompt played into DIR as NNNNNN-<prompt>.wav, at the "
                        "moment it starts")
    local.add_settings_option(p)  # `pingjia simulate --config F` as well as `pingjia --config F simulate`
    p.set_defaults(func=run_command)


def sim_settings(base, args, central_url: str = ""):
    """Explicit simulation choices on top of the given settings."""
    data_dir = Path(args.data_dir).resolve()
    driver = args.display or ("dummy" if args.headless else "console")
    values = {
        "device": {"data_dir": str(data_dir), "secret_file": str(data_dir / "secret")},
        "buttons": {"pin_factory": "mock"},
        "display": {"driver": driver, "output_dir": args.frames or str(data_dir / "frames")},
        "api": {"bind": "127.0.0.1", "port": args.port, "token": args.token, "token_file": "",
                "allow_origins": [*base.api.allow_origins, *getattr(args, "allow_origin", [])]},
        "sound": {"driver": "clips" if getattr(args, "sound", "none") == "alsa" else "none"},
    }
    if args.mode:
        values["device"]["mode"] = args.mode
    if (args.mode or base.device.mode) == "kiosk":
        values["reader"] = {"driver": "simulated"}  # chosen here, never a silent fallback
    if central_url:
        values["central"] = {"url": central_url}
    return base.with_values(values, source=base.source + " + simulate")


# --- the central side: receiver and agent ---------------------------------------------------

def sample_lookup(now: datetime) -> dict:
    """The receiver's lookup table for the simulated cards (all data fictitious).

    Serial numbers carry the start time, so every run of the simulator has businesses
    waiting to be rated (a rated one is never offered again: 一次一评)."""
    from drivers.idcard.simulated import SAMPLE_CARDS
    stamp = now.strftime("%Y%m%d%H%M")
    people, n = [], 0
    for card_type, finished in SAMPLE_FINISHED.items():
        card = SAMPLE_CARDS[card_type]().card
        businesses = []
        for name, code, dept, staff, hours in finished:
            n += 1
            businesses.append({
                "project_no": f"330106{stamp}{n:02d}", "task_name": name, "task_code": code,
                "dept_name": dept, "staff_name": staff,
                "finished_at": (now - timedelta(hours=hours)).replace(microsecond=0).isoformat()})
        people.append({"cert_type": card.cert_type, "cert_no": card.id_number,
                       "businesses": businesses})
    return {"people": people}


class Central:
    """The reference receiver and the sync agent beside the simulated terminal."""

    def __init__(self, data_dir: Path, device_id: str, secret: bytes, hash_alg: str,
                 port: int = 0):
        from agent.receiver import Receiver
        self.dir = Path(data_dir) / RECEIVER_DIR
        self.dir.mkdir(parents=True, exist_ok=True)
        self.lookup_file = self.dir / "lookup.json"
        self.lookup_file.write_text(json.dumps(sample_lookup(datetime.now(CHINA)),
                                               ensure_ascii=False, indent=1), encoding="utf-8")
        self.device_id = device_id
        self.receiver = Receiver(self.dir / "receiver.db",
                                 devices={device_id: {"secret": secret, "hash_alg": hash_alg}},
                                 lookup_file=self.lookup_file, port=port)
        self.agent = None
        self._thread = None
        self.online = False

    def start(self) -> "Central":
        self.receiver.start()
        self.online = True
        return self

    @property
    def url(self) -> str:
        return self.receiver.url

    def start_agent(self, settings, secret: bytes) -> None:
        from agent.sync import Agent
        self.agent = Agent(settings, secret=secret)
        self._thread = threading.Thread(target=self.agent.run, name="sim-agent", daemon=True)
        self._thread.start()

    def toggle(self) -> bool:
        """Take the receiver off line or bring it back (same port); True when on line."""
        if self.online:
            self.receiver.stop()
        else:
            self.receiver.start()
        self.online = not self.online
        return self.online

    def close(self) -> None:
        if self.agent is not None:
            self.agent.stop()
            if self._thread is not None:
                self._thread.join(timeout=10)
            self.agent.close()
            self.agent = None
        self.receiver.close()


# --- the command -------------------------------------------------------------------------

LOG_FILE = "simulate.log"


def run_command(args) -> int:
    from terminal.runtime import Runtime  # heavy imports only for this command
    from terminal.serve import startup_errors

    config = getattr(args, "config", None)
    base = config_settings.load(config) if config else config_settings.defaults()
    settings = sim_settings(base, args)
    data_dir = Path(settings.device.data_dir)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        log_file = log_to_file(data_dir / LOG_FILE, args.verbose)
        secret = ensure_sim_secret(Path(settings.device.secret_file))
    except OSError as exc:
        return _cannot_start(f"cannot use the data directory {data_dir} ({exc.strerror or exc}): "
                             "pass --data-dir with a writable directory")

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    central = None
    if not args.no_sync:
        try:
            central = Central(data_dir, settings.device.id, secret, settings.device.hash_alg,
                              args.receiver_port).start()
        except OSError as exc:
            return _cannot_start("the reference receiver cannot start: "
                                 + _port_problem(exc, args.receiver_port, "--receiver-port"))
        settings = sim_settings(base, args, central.url)

    try:
        runtime = Runtime(settings, secret=secret, sound_dir=args.sound_dir)
    except (OSError, *startup_errors()) as exc:
        if central is not None:
            central.close()
        if isinstance(exc, OSError):
            return _cannot_start("the local API cannot start: "
                                 + _port_problem(exc, args.port, "--port"))
        return _cannot_start(str(exc))
    keys = KeyInput(sys.stdin)
    try:
        if central is not None:
            central.start_agent(settings, secret)
        sim = Simulator(runtime, args, stop, central=central, keys=keys, log_file=log_file)
        sim.start()
        runtime.run(stop, on_turn=sim.on_turn)
    finally:
        keys.restore()
        runtime.close()
        if central is not None:
            central.close()
    return 0


def _cannot_start(message: str) -> int:
    print(f"pingjia simulate: {message}", file=sys.stderr)
    return 1


def _port_problem(exc: OSError, port: int, option: str) -> str:
    """A bind failure as the technician can act on it."""
    if exc.errno == errno.EADDRINUSE:
        return (f"port {port} is in use (another simulator or terminal?): stop that one, or "
                f"pass {option} with a free port")
    if exc.errno == errno.EACCES:
        return f"port {port} needs more rights: pass {option} with a port above 1024"
    return f"{exc.strerror or exc}"


def log_to_file(path: Path, verbose: int) -> Path:
    """The simulator's log, the agent's warnings included, goes to `path`: the terminal
    belongs to the panel and its messages. With -v it goes to standard error as well."""
    from logging.handlers import RotatingFileHandler

    root = logging.getLogger()
    handler = RotatingFileHandler(path, maxBytes=1_000_000, backupCount=1, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    if not verbose:
        for old in list(root.handlers):
            root.removeHandler(old)
        root.setLevel(logging.INFO)
    root.addHandler(handler)
    return path


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
                 central: "Central | None" = None, keys: "KeyInput | None" = None,
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
        if self.keys.background:
            self._say("running in the background: no keys are read (the local API serves)")
        else:
            self.keys.cbreak()
            threading.Thread(target=self._read_keys, name="sim-keys", daemon=True).start()
        if not self.kiosk:
            # A window has someone at it: without staff, invitations would be refused
            # (site.require_staff). PUT/DELETE /v1/staff change it like at a real window.
            staff_id, name = sample_staff(self.rng)
            self.terminal.post(flow.SignIn(flow.Staff(staff_id, name)))  # the loop starts later
            self._say(f"staff {name} ({staff_id}) signed in")
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

