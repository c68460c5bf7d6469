"""Button press to frame, and the cost of a durable rating commit.

    python tests/bench/bench_terminal.py [--presses 400] [--commits 300]

Press to frame: the real Terminal event thread, flow, screens (CJK font) and a luma
`dummy` device; the clock starts when the button callback posts its event and stops when
the device has the new frame. Two kinds of press: moving in the tag list (no storage) and
a rating (the record is committed before the thanks frame, so the commit is inside).

Commit: `Store.append` of one rating (seal, hash, HMAC, records + delivery rows, WAL,
synchronous=FULL) against a bare sqlite3 INSERT + COMMIT of the same JSON into a one-column
table with the same journal settings, in the same directory.
"""
from __future__ import annotations

import argparse
import json
import os
import sqlite3
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
from terminal.clock import SystemClock  # noqa: E402
from terminal.service import Terminal  # noqa: E402
from terminal.store import DB_NAME, Store  # noqa: E402
from tests.bench.figures import line, percentile  # noqa: E402

SECRET = b"bench-secret-0123456789abcdef"


class TimedDisplay:
    """The dummy device, noting when each frame has been handed over."""

    def __init__(self, display):
        self.display = display
        self.size, self.mode = display.size, display.mode
        self.shown = threading.Event()
        self.at = 0.0

    def show(self, image):
        sent = self.display.show(image)
        self.at = time.perf_counter()
        self.shown.set()
        return sent


def press_to_frame(directory: Path, presses: int):
    settings = config_settings.defaults().with_values({"display": {"driver": "dummy"}})
    fonts = find_fonts(())
    display = TimedDisplay(open_display(settings.display))
    cfg = flow.FlowConfig.from_settings(settings, builtin(), "bench")
    store = Store(directory / DB_NAME, device_id="PJQ-BENCH-1", secret=SECRET,
                  hash_alg="sha256", boot_id="bench")
    term = Terminal(cfg, store=store, clock=SystemClock(), display=display,
                    render=partial(screens.render, fonts=fonts))
    stop = threading.Event()
    thread = threading.Thread(target=term.run, args=(stop,), daemon=True)
    thread.start()

    def settled(make):
        """A request, and the frame it leads to (drawn after the reply is sent)."""
        display.shown.clear()
        reply = term.request(make)
        if not display.shown.wait(5):
            raise RuntimeError("no frame within 5 s")
        return reply

    settled(lambda rid: flow.SignIn(flow.Staff("0001", "王芳"), rid))

    def timed(event) -> float:
        display.shown.clear()
        started = time.perf_counter()
        term.post(event)
        if not display.shown.wait(5):
            raise RuntimeError("no frame within 5 s")
        return (display.at - started) * 1000

    down = cfg.order[1]  # the second button moves down a list
    navigate, rate = [], []
    for n in range(presses):
        business = flow.Business(project_no=f"BENCH{n:08d}", task_name="不动产登记（转移登记）",
                                 task_code="11330106MB0001")
        reply = settled(lambda rid: flow.Invite(f"visit-{n}", (business,), None, rid))
        assert reply.status == 201, reply
        rate.append(timed(flow.Press(2)))             # bad rating: commit-free tag screen
        navigate.append(timed(flow.Press(down)))
        navigate.append(timed(flow.Press(down)))
        settled(lambda rid: flow.Cancel(rid))         # leaves with tags_missing: stored
        settled(lambda rid: flow.Invite(f"visit-{n}b", (
            flow.Business(project_no=f"BENCH{n:08d}b", task_name="户籍迁入"),), None, rid))
        rate.append(timed(flow.Press(5)))             # good rating: committed, then thanks
    stop.set()
    thread.join(5)
    store.close()
    return navigate, rate[1::2]


def commit_cost(directory: Path, commits: int):
    store = Store(directory / "commit.db", device_id="PJQ-BENCH-1", secret=SECRET,
                  hash_alg="sha256", boot_id="bench")
    draft = _a_rating_draft()
    bare = sqlite3.connect(str(directory / "bare.db"), isolation_level=None)
    bare.execute("PRAGMA journal_mode=WAL")
    bare.execute("PRAGMA synchronous=FULL")
    bare.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, json TEXT NOT NULL)")
    body = json.dumps(draft, ensure_ascii=False)
    ours, base = [], []
    for _ in range(commits):  # interleaved so both see the same disk weather
        t = time.perf_counter()
        store.append([draft])
        ours.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        bare.execute("BEGIN")
        bare.execute("INSERT INTO t (json) VALUES (?)", (body,))
        bare.execute("COMMIT")
        base.append((time.perf_counter() - t) * 1000)
    store.close()
    bare.close()
    return ours, base


def _a_rating_draft() -> dict:
    from tests.terminal.flowkit import Flow
    f = Flow()
    f.invite()
    f.press(5)
    return f.records[0]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presses", type=int, default=400)
    parser.add_argument("--commits", type=int, default=300)
    parser.add_argument("--dir", help="where the databases go (default: a temporary directory "
                                      "under the current one, i.e. on the same disk)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pingjia-bench-", dir=args.dir or os.getcwd()) as tmp:
        tmp = Path(tmp)
        navigate, rate = press_to_frame(tmp, args.presses)
        ours, base = commit_cost(tmp, args.commits)
    print(f"terminal: press to frame ({len(navigate)} list moves, {len(rate)} ratings), "
          f"durable commit ({len(ours)} commits)")
    print(line("press→frame, list move p50", percentile(navigate, 50), "ms"))
    print(line("press→frame, list move p99", percentile(navigate, 99), "ms", 5.0))
    print(line("press→frame, rating incl. commit p50", percentile(rate, 50), "ms"))
    print(line("press→frame, rating incl. commit p99", percentile(rate, 99), "ms", 5.0))
    p50_ours, p50_base = percentile(ours, 50), percentile(base, 50)
    print(line("rating commit (Store.append) p50", p50_ours, "ms"))
    print(line("bare sqlite3 insert+commit p50", p50_base, "ms"))
    print(line("commit cost ratio (p50)", p50_ours / p50_base, "×", 1.5))
    return 0


if __name__ == "__main__":
    sys.exit(main())
