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

This module is the launcher; simulate_central.py holds the receiver and agent beside
the terminal, simulate_console.py the keys and the messages under the panel.
"""
from __future__ import annotations

import argparse
import errno
import logging
import signal
import sys
import threading
from pathlib import Path

from config import settings as config_settings
from config.cli import local
from config.cli.simulate_central import Central
from config.cli.simulate_console import KeyInput, Simulator
from terminal.secret import ensure_sim_secret

log = logging.getLogger("pingjia.simulate")

SIM_TOKEN = "pingjia-simulator-demo-token"
API_PORT = config_settings.defaults().api.port  # the settings' api.port default

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
    p.add_argument("--port", type=int, default=API_PORT,
                   help=f"local API port (default {API_PORT})")
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
