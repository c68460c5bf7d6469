"""Button press to frame, and the cost of a durable rating commit.

    python tests/bench/bench_terminal.py [--presses 400] [--commits 300]

Press to frame: the real Terminal event thread, flow, screens (CJK font) and a luma
`dummy` device; the clock starts when the button callback posts its event and stops when
the device has the new frame. Two kinds of press: moving in the tag list (no storage) and
a rating (the record is committed before the thanks frame, so the commit is inside).

Commit: `Store.append` of one rating (seal, hash, HMAC, the records row, WAL,
synchronous=FULL) against bare sqlite3 INSERT + COMMIT with the same connection settings
(store.open_connection), in the same directory, of (a) the same record's row into the same
tables and indexes: what the store's own work (the chain, the seal, the checks) adds to
writing the rating; the target applies here; and (b) the record's JSON into a one-column
table: the floor of any durable write, shown for scale (the store's three indexes are a
good part of the difference).
"""
from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import threading
import time
import uuid
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
from terminal.store import DB_NAME, PAGE_SIZE, Store, insert_record, open_connection  # noqa: E402
from tests.bench.figures import add_dir_option, line, percentile, work_dir  # noqa: E402

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
    """Milliseconds per commit: (Store.append, the same row bare, a one-column row bare)."""
    store = Store(directory / "commit.db", device_id="PJQ-BENCH-1", secret=SECRET,
                  hash_alg="sha256", boot_id="bench")
    draft = _a_rating_draft()
    same = _bare(directory / "bare-same.db", [sql for (sql,) in store.db.conn.execute(
        "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY rowid")])
    minimal = _bare(directory / "bare-minimal.db",
                    ["CREATE TABLE t (id INTEGER PRIMARY KEY, json TEXT NOT NULL)"])
    sealed = store.append([draft])[0]  # a real record's row; each bare insert gets its own id
    body = json.dumps(draft, ensure_ascii=False)
    ours, base_same, base_minimal = [], [], []
    for i in range(1, commits + 1):  # interleaved so all three see the same disk weather
        t = time.perf_counter()
        store.append([draft])
        ours.append((time.perf_counter() - t) * 1000)
        row = dict(sealed, record_id=str(uuid.uuid4()), seq=i)
        t = time.perf_counter()
        same.execute("BEGIN")
        insert_record(same, row)  # (what a rating's commit writes: no delivery row)
        same.execute("COMMIT")
        base_same.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        minimal.execute("BEGIN")
        minimal.execute("INSERT INTO t (json) VALUES (?)", (body,))
        minimal.execute("COMMIT")
        base_minimal.append((time.perf_counter() - t) * 1000)
    store.close()
    same.close()
    minimal.close()
    return ours, base_same, base_minimal


def _bare(path: Path, schema: list) -> sqlite3.Connection:
    """Plain sqlite3 with the store's connection settings (store.open_connection: page
    size, WAL, synchronous=FULL, checkpoints): what the store's own code costs is the rest."""
    conn = open_connection(path, PAGE_SIZE)
    for sql in schema:
        conn.execute(sql)
    return conn


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
    add_dir_option(parser)
    args = parser.parse_args(argv)
    with work_dir(args) as tmp:
        tmp = Path(tmp)
        navigate, rate = press_to_frame(tmp, args.presses)
        ours, base_same, base_minimal = commit_cost(tmp, args.commits)
    print(f"terminal: press to frame ({len(navigate)} list moves, {len(rate)} ratings), "
          f"durable commit ({len(ours)} commits)")
    print(line("press→frame, list move p50", percentile(navigate, 50), "ms"))
    print(line("press→frame, list move p99", percentile(navigate, 99), "ms", 5.0))
    print(line("press→frame, rating incl. commit p50", percentile(rate, 50), "ms"))
    print(line("press→frame, rating incl. commit p99", percentile(rate, 99), "ms", 5.0))
    p50_ours = percentile(ours, 50)
    p50_same, p50_minimal = percentile(base_same, 50), percentile(base_minimal, 50)
    print(line("rating commit (Store.append) p50", p50_ours, "ms"))
    print(line("bare sqlite3 insert+commit, same row p50", p50_same, "ms"))
    print(line("bare sqlite3 insert+commit, one column p50", p50_minimal, "ms"))
    print(line("commit cost ratio vs the same row (p50)", p50_ours / p50_same, "×", 1.5))
    print(line("commit cost ratio vs one column (p50)", p50_ours / p50_minimal, "×"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
