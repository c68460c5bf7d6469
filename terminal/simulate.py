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

Keys (typed, or characters on standard input when headless; newlines are ignored):
  1-5      press a rating button (5 = 非常满意); Shift+1-5 (!@#$%) holds it
  n        invite a sample business (window), or a kiosk-app invitation (kiosk)
  o        take the receiver off line / back on line (network down)
  q        quit (interactive only)
kiosk mode (--mode kiosk) adds the simulated ID-card reader, spoken to through the real
driver over a pseudo-terminal:
  c        put the sample resident ID card (居民身份证) on the reader
  f        put the sample foreign permanent-resident card (外国人永久居留身份证) on it
  u        put a card that cannot be read (the read fails, SW3 41)
  x        take the card away; with no card on the reader, unplug or replug the reader
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import random
import signal
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

from config import settings as config_settings
from terminal import flow
from terminal.catalogue import sample_business, sample_staff
from terminal.clock import CHINA
from terminal.secret import ensure_sim_secret

log = logging.getLogger("pingjia.simulate")

SIM_TOKEN = "pingjia-simulator-demo-token"
HOLD_KEYS = {"!": 1, "@": 2, "#": 3, "$": 4, "%": 5}
HELP = "键 1-5 评价(5=非常满意)  Shift+1-5 长按  n 新邀请  o 断网/联网  q 退出"
KIOSK_HELP = ("键 c 放身份证  f 放外国人永久居留证  u 放读不出的卡  x 取走卡/拔插读卡器  "
              "1-5 按键  n 自助机邀请  o 断网/联网  q 退出")
RECEIVER_DIR = "receiver"
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
    p.add_argument("--receiver-port", type=int, default=0,
                   help="port of the embedded receiver (default: any free port)")
    p.add_argument("--sound", choices=("none", "alsa"), default="none",
                   help="alsa: speak the prompts aloud (sound.device of --config, default "
                        "\"default\"); default none")
    p.add_argument("--sound-dir", metavar="DIR",
                   help="write every prompt played into DIR as NNNNNN-<prompt>.wav, at the "
                        "moment it starts")
    p.set_defaults(func=run_command)


def sim_settings(base, args, central_url: str = ""):
    """Explicit simulation choices on top of the given settings."""
    data_dir = Path(args.data_dir).resolve()
    driver = args.display or ("dummy" if args.headless else "console")
    values = {
        "device": {"data_dir": str(data_dir), "secret_file": str(data_dir / "secret")},
        "buttons": {"pin_factory": "mock"},
        "display": {"driver": driver, "output_dir": args.frames or str(data_dir / "frames")},
        "api": {"bind": "127.0.0.1", "port": args.port, "token": args.token, "token_file": ""},
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

    central = None
    if not args.no_sync:
        try:
            central = Central(data_dir, settings.device.id, secret, settings.device.hash_alg,
                              args.receiver_port).start()
        except OSError as exc:
            print(f"pingjia simulate: the reference receiver cannot start: {exc}", file=sys.stderr)
            return 1
        settings = sim_settings(base, args, central.url)

    from terminal.serve import startup_errors
    try:
        runtime = Runtime(settings, secret=secret, sound_dir=args.sound_dir)
    except startup_errors() as exc:
        if central is not None:
            central.close()
        print(f"pingjia simulate: {exc}", file=sys.stderr)
        return 1
    try:
        if central is not None:
            central.start_agent(settings, secret)
        sim = Simulator(runtime, args, stop, central=central)
        sim.start()
        runtime.run(stop)
    finally:
        runtime.close()
        if central is not None:
            central.close()
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
    """Keyboard, demo invitations, the card reader's keys and the status line around a
    running terminal."""

    def __init__(self, runtime, args, stop: threading.Event, stdin=None, out=None,
                 central: "Central | None" = None):
        self.runtime = runtime
        self.terminal = runtime.terminal
        self.args = args
        self.stop = stop
        self.central = central
        self.stdin = stdin if stdin is not None else sys.stdin
        self.out = out or sys.stdout
        self.rng = random.Random()
        self.interactive = not args.headless and self.stdin.isatty()
        self.kiosk = runtime.settings.device.mode == "kiosk"
        self.terminal.listeners.append(self._stored)

    @property
    def help(self) -> str:
        return KIOSK_HELP if self.kiosk else HELP

    def start(self) -> None:
        api = self.runtime.api
        self._say(f"local API http://127.0.0.1:{api.port} token {self.args.token}")
        self._say(f"database {self.runtime.store.path}")
        if self.central is not None:
            self._say(f"reference receiver {self.central.url} (database "
                      f"{self.central.dir / 'receiver.db'}); sync agent running")
        else:
            self._say("no receiver, no sync agent (--no-sync): records stay in the outbox")
        reader = self.runtime.reader
        if reader is not None:
            self._say(f"simulated ID-card reader on {reader.port}")
        if self.interactive:
            _cbreak(self.stdin.fileno())
        threading.Thread(target=self._keys, name="sim-keys", daemon=True).start()
        if not self.kiosk:
            # A window has someone at it: without staff, invitations would be refused
            # (site.require_staff). PUT/DELETE /v1/staff change it like at a real window.
            staff_id, name = sample_staff(self.rng)
            self.terminal.post(flow.SignIn(flow.Staff(staff_id, name)))  # the loop starts later
            self._say(f"staff {name} ({staff_id}) signed in")
        if self.args.demo:
            threading.Thread(target=self._demo, name="sim-demo", daemon=True).start()
        self._say("ready: " + self.help)

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
        elif ch == "q" and self.interactive:
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
            self._say(f"stored #{r['seq']} {what} {r['task_name']} {r['project_no']} "
                      f"[{r['channel']}{', real name' if r['real_name'] else ''}]")

    def _say(self, text: str) -> None:
        display = self.runtime.display
        if self.interactive and hasattr(display, "set_status"):
            display.set_status(f"{text}\n{self.help}")  # the keys stay in view
        else:
            print(f"[pingjia] {text}", file=self.out, flush=True)
