"""Outcomes for browser-based business systems: key press to the browser's event, and what
open event streams cost the flow.

    python tests/bench/bench_browser.py [--rounds 200] [--presses 1000]

Press to browser: a page on another origin in headless Chromium (Debian's chromium,
driven by playwright) invites through the device's /pingjia.js and holds its event
stream; the clock starts when the button's event is posted on the real terminal (flow,
store with its durable commit, screens, local API) and stops when the page's Promise has
the outcome (both clocks are this machine's wall clock, in ms).

Streams and the flow: press to frame of a rating (commit included) with the local API
running and no stream open, against the same with 8 streams open and read, in
alternating blocks so that the machine's other load falls on both alike. Its store is on
tmpfs (/dev/shm, where there is one): the commit's fsync is the same with streams and
without, and on a shared disk its jitter alone moved this p99 by tens of percent from
run to run; what is compared is what the streams add, the flow's work and the hub's.
The durable commit's own time is bench_terminal's figure.
"""
from __future__ import annotations

import argparse
import http.server
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from config import settings as config_settings  # noqa: E402
from config.tags import builtin  # noqa: E402
from drivers.display import open_display  # noqa: E402
from drivers.fonts import find_fonts  # noqa: E402
from terminal import flow, screens  # noqa: E402
from terminal.api import ApiServer  # noqa: E402
from terminal.clock import SystemClock  # noqa: E402
from terminal.service import Terminal  # noqa: E402
from terminal.store import DB_NAME, Store  # noqa: E402
from tests.bench.bench_terminal import TimedDisplay  # noqa: E402
from tests.bench.figures import add_dir_option, line, percentile, work_dir  # noqa: E402

SECRET = b"bench-secret-0123456789abcdef"
TOKEN = "bench-token-0123456789abcdef0123"
STREAMS = 8


class Device:
    """A terminal with its local API, as the service assembles it."""

    def __init__(self, directory: Path, origins=()):
        settings = config_settings.defaults().with_values({
            "display": {"driver": "dummy"},
            "api": {"bind": "127.0.0.1", "port": 8410, "token": TOKEN,
                    "allow_origins": list(origins), "max_streams": 16}})
        self.display = TimedDisplay(open_display(settings.display))
        cfg = flow.FlowConfig.from_settings(settings, builtin(), "bench")
        self.store = Store(directory / DB_NAME, device_id="PJQ-BENCH-1", secret=SECRET,
                           hash_alg="sha256", boot_id="bench")
        self.term = Terminal(cfg, store=self.store, clock=SystemClock(), display=self.display,
                             render=partial(screens.render, fonts=find_fonts(())))
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.term.run, args=(self.stop,), daemon=True)
        self.thread.start()
        self.api = ApiServer(settings.api, self.term, directory / DB_NAME, TOKEN, port=0)
        self.api.start()
        self.url = f"http://127.0.0.1:{self.api.port}"
        self.settled(lambda rid: flow.SignIn(flow.Staff("0001", "王芳"), rid))

    def settled(self, make):
        self.display.shown.clear()
        reply = self.term.request(make)
        if not self.display.shown.wait(5):
            raise RuntimeError("no frame within 5 s")
        return reply

    def close(self):
        self.api.stop()
        self.stop.set()
        self.term.post(flow.Tick())
        self.thread.join(5)
        self.store.close()


# --- press to the browser's event -------------------------------------------------------------

INVITE = """([token, visitId]) => {
  window.device = window.device || Pingjia.connect({token: token});
  window.outcome = null;
  window.device.invite([{project_no: "BR-" + visitId, task_name: "户籍迁入"}], null, {visitId: visitId})
    .then(o => { window.outcome = o; window.outcomeAt = Date.now(); });
}"""


def press_to_browser(directory: Path, rounds: int):
    from playwright.sync_api import sync_playwright

    page_html = {"body": b""}

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page_html["body"])))
            self.end_headers()
            self.wfile.write(page_html["body"])

        def log_message(self, *args):
            pass

    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    origin = f"http://127.0.0.1:{site.server_address[1]}"
    device = Device(directory, [origin])
    page_html["body"] = f'<!doctype html><script src="{device.url}/pingjia.js"></script>'.encode()
    took = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), headless=True,
                                        args=["--no-sandbox"])
            page = browser.new_page()
            page.goto(origin + "/")
            for n in range(rounds):
                visit = f"bench-{n}"
                page.evaluate(INVITE, [TOKEN, visit])
                while getattr(flow.open_visit(device.term.snapshot()), "visit_id", None) != visit:
                    time.sleep(0.002)
                time.sleep(0.01)  # the 201 reaches the page before the press, as at a counter
                pressed = time.time() * 1000
                device.term.post(flow.Press(5))
                page.wait_for_function("window.outcome !== null", timeout=10_000)
                took.append(page.evaluate("window.outcomeAt") - pressed)
            streams = device.api.ops.hub.counts()["subscribers"]
            browser.close()
    finally:
        device.close()
        site.shutdown()
    return took, streams


# --- what open streams cost the flow ------------------------------------------------------------

# The readers of the streams: a process of their own, as browsers are (threads of this
# one would take the interpreter's lock from the flow they are measured against).
_READERS = """
import selectors, socket, sys
port, n, token = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
sel = selectors.DefaultSelector()
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(f"GET /v1/events HTTP/1.1\\r\\nHost: x\\r\\nAuthorization: Bearer {token}\\r\\n\\r\\n".encode())
    sel.register(s, selectors.EVENT_READ)
sel.register(sys.stdin, selectors.EVENT_READ)
while True:
    for key, _ in sel.select():
        if key.fileobj is sys.stdin:
            sys.exit(0)
        if not key.fileobj.recv(65536):
            sel.unregister(key.fileobj)
"""


def open_streams(port: int, n: int):
    """`n` event streams, read by another process; returns a closer."""
    readers = subprocess.Popen([sys.executable, "-c", _READERS, str(port), str(n), TOKEN],
                               stdin=subprocess.PIPE)

    def close():
        readers.stdin.close()
        readers.wait(timeout=10)
    return close


def press_to_frame(directory: Path, presses: int, block: int = 25):
    device = Device(directory)
    quiet, busy = [], []
    try:
        n = 0
        while len(quiet) + len(busy) < 2 * presses:
            streaming = (n // block) % 2 == 1
            close = open_streams(device.api.port, STREAMS) if streaming else None
            if close is not None:
                deadline = time.monotonic() + 5
                while device.api.ops.hub.counts()["subscribers"] < STREAMS:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the streams did not open")
                    time.sleep(0.01)
            for _ in range(block):
                business = flow.Business(project_no=f"BF{n:08d}", task_name="户籍迁入")
                reply = device.settled(lambda rid: flow.Invite(f"frame-{n}", (business,), None, rid))
                assert reply.status == 201, reply
                time.sleep(0.01)  # the press comes after the invitation is out, as at a counter
                device.display.shown.clear()
                started = time.perf_counter()
                device.term.post(flow.Press(5))
                if not device.display.shown.wait(5):
                    raise RuntimeError("no frame within 5 s")
                (busy if streaming else quiet).append((device.display.at - started) * 1000)
                n += 1
            if close is not None:
                close()
                while device.api.ops.hub.counts()["open"]:
                    time.sleep(0.01)
    finally:
        device.close()
    return quiet, busy


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--presses", type=int, default=1000)
    add_dir_option(parser)
    args = parser.parse_args(argv)
    with work_dir(args) as tmp:
        tmp = Path(tmp)
        (tmp / "a").mkdir()
        (tmp / "b").mkdir()
        if shutil.which("chromium"):
            took, streams = press_to_browser(tmp / "a", args.rounds)
            print(f"browser: key press to the outcome in a Chromium page ({len(took)} ratings, "
                  f"{'event stream' if streams else 'long polls'})")
            print(line("press→browser outcome p50", percentile(took, 50), "ms"))
            print(line("press→browser outcome p99", percentile(took, 99), "ms", 50.0))
        else:
            print("browser: no chromium on this machine (Debian package chromium): skipped")
        shm = Path("/dev/shm")
        with tempfile.TemporaryDirectory(prefix="pingjia-bench-",
                                         dir=shm if shm.is_dir() else tmp / "b") as frames:
            quiet, busy = press_to_frame(Path(frames), args.presses)
    q99, b99 = percentile(quiet, 99), percentile(busy, 99)
    print(f"browser: press to frame of a rating, no stream against {STREAMS} open streams "
          f"({len(quiet)} + {len(busy)} ratings, the store on tmpfs)")
    print(line("press→frame p99, no stream", q99, "ms"))
    print(line(f"press→frame p99, {STREAMS} streams", b99, "ms"))
    print(line(f"change of p99 with {STREAMS} streams", (b99 / q99 - 1) * 100, "%", 10.0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
