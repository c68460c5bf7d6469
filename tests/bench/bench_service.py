"""The terminal service as a process: start, memory, what it writes to the SD card, idle.

    python tests/bench/bench_service.py [--ratings 200] [--idle-s 60]

The service as its unit runs it, `python -m terminal` (tests/bench/service_host.py: that
entry point, plus a line reader that presses the mock buttons) on simulated hardware (mock pins, luma
`dummy` display, no sound), with a fake $NOTIFY_SOCKET:

- start: process start → READY=1 (sd_notify), and → the first frame handed to the
  display; the import time of each top-level package (`python -X importtime`, the
  self times summed per package) in a second start.
- ratings: `--ratings` times an invitation over the local API, a press of button 5 on
  the mock panel, and the outcome read back; then the service's VmRSS, and its
  write_bytes from /proc/<pid>/io (what it made the kernel write to storage: the WAL,
  its checkpoints into the database, fsyncs included) per rating.
- idle: the service's user+system CPU time over `--idle-s` seconds with nothing
  happening (after the thanks screen has timed out), as a share of one core.
- WAL frames per commit: `Store.commit` in this process, the way the terminal stores a
  visit (the invitation's open_visits row in one commit, the rating in the next), with
  automatic checkpoints off so the WAL only grows: its growth in frames per commit.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.bench.figures import add_dir_option, cpu_s, line, rss_kib, work_dir  # noqa: E402
from tests.ops.conftest import TOKEN, NotifySocket, api_url, sim_config  # noqa: E402

HOST = Path(__file__).with_name("service_host.py")
START_TARGET_S = 1.0
RSS_TARGET_MIB = 40
WRITE_TARGET_KIB = 16
IDLE_TARGET_PCT = 0.2


def start(config: Path, notify: NotifySocket, extra=()) -> tuple[subprocess.Popen, int]:
    env = {**os.environ, **notify.env()}
    env.pop("CREDENTIALS_DIRECTORY", None)
    env.pop("WATCHDOG_USEC", None)
    started = time.monotonic_ns()
    proc = subprocess.Popen([sys.executable, *extra, str(HOST), "--config", str(config)],
                            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    return proc, started


def stop(proc: subprocess.Popen) -> str:
    proc.terminate()
    _, err = proc.communicate(timeout=30)
    if proc.returncode != 0:
        raise RuntimeError(f"the terminal exited {proc.returncode}: {err}")
    return err


def call(config: Path, method: str, path: str, body=None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(api_url(config) + path, data=data, method=method, headers={
        "Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as answer:
        return json.loads(answer.read())


def proc_io(pid: int) -> dict:
    text = Path(f"/proc/{pid}/io").read_text()
    return {k: int(v) for k, v in (row.split(": ") for row in text.splitlines())}






def rate(config: Path, proc: subprocess.Popen, n: int) -> None:
    visit = f"BENCH-{n:05d}"
    call(config, "POST", "/v1/invitations", {"visit_id": visit, "items": [
        {"project_no": f"3301062026{n:08d}", "task_name": "不动产转移登记",
         "task_code": "11330106002489123X400011700100001"}]})
    proc.stdin.write("press 5\n")
    proc.stdin.flush()
    end = time.monotonic() + 10
    while call(config, "GET", f"/v1/invitations/{visit}")["state"] == "open":
        if time.monotonic() > end:
            raise RuntimeError(f"{visit} was not rated within 10 s")
        time.sleep(0.02)


def wait_for_screen(config: Path, state: str, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while call(config, "GET", "/v1/status")["state"] != state:
        if time.monotonic() > end:
            raise RuntimeError(f"the terminal did not go back to {state}")
        time.sleep(0.2)


def service_run(tmp: Path, ratings: int, idle_s: float) -> dict:
    config = sim_config(tmp, driver="dummy")
    text = config.read_text(encoding="utf-8")
    config.write_text(text + "[sound]\ndriver = \"none\"\n[timeouts]\nthanks_s = 1\n", encoding="utf-8")
    notify = NotifySocket()
    try:
        proc, started = start(config, notify)
        try:
            notify.wait_for("READY=1", timeout=60)
            ready_ns = time.monotonic_ns()
            frame_ns = int(proc.stdout.readline().split()[1])
            call(config, "PUT", "/v1/staff", {"id": "0131", "name": "王芳"})
            rate(config, proc, 0)  # the first one opens what every rating uses
            before = proc_io(proc.pid)
            for n in range(1, ratings + 1):
                rate(config, proc, n)
            after = proc_io(proc.pid)
            rss = rss_kib(proc.pid)
            wait_for_screen(config, "idle")
            time.sleep(2)  # the last API connection closed, timers settled
            cpu0, t0 = cpu_s(proc.pid), time.monotonic()
            time.sleep(idle_s)
            idle = (cpu_s(proc.pid) - cpu0) / (time.monotonic() - t0)
        finally:
            stop(proc)
    finally:
        notify.close()
    return {"ready_s": (ready_ns - started) / 1e9, "frame_s": (frame_ns - started) / 1e9,
            "rss_kib": rss, "write_per_rating": (after["write_bytes"] - before["write_bytes"]) / ratings,
            "idle_pct": idle * 100}


def import_times(tmp: Path) -> list[tuple[str, float]]:
    """Self import time per top-level package (ms), from a start with -X importtime."""
    (tmp / "imports").mkdir()
    config = sim_config(tmp / "imports", driver="dummy")
    notify = NotifySocket()
    try:
        proc, _ = start(config, notify, ("-X", "importtime"))
        try:
            notify.wait_for("READY=1", timeout=60)
        finally:
            err = stop(proc)
    finally:
        notify.close()
    per = defaultdict(float)
    for row in err.splitlines():
        found = re.match(r"import time:\s+(\d+) \|\s+\d+ \|( *)(\S+)", row)
        if found:
            per[found.group(3).split(".")[0]] += int(found.group(1)) / 1000
    return sorted(per.items(), key=lambda kv: -kv[1])


def wal_frames_per_commit(tmp: Path, visits: int = 100) -> tuple[float, int]:
    """(WAL frames per commit, page size) storing `visits` visits as the terminal does."""
    from terminal.store import DB_NAME, Store
    from tests.bench.bench_terminal import _a_rating_draft

    path = tmp / "wal" / DB_NAME
    store = Store(path, device_id="PJQ-BENCH-1", secret=b"bench-secret-0123456789abcdef",
                  hash_alg="sha256", boot_id="bench")
    try:
        draft = _a_rating_draft()
        unrated = dict(draft, kind="unrated", unrated_reason="interrupted", level=None,
                       score=None, rated_at=None, tags=[])
        store.commit([dict(draft, visit_id="warm-up")])
        store.db.conn.execute("PRAGMA wal_autocheckpoint = 0")
        store.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page = store.db.conn.execute("PRAGMA page_size").fetchone()[0]
        wal = Path(str(path) + "-wal")
        for i in range(visits):
            vid = f"visit-{i}"
            store.commit((), [dict(unrated, visit_id=vid)])
            store.commit([dict(draft, visit_id=vid)])
        frames = (wal.stat().st_size - 32) / (page + 24)
    finally:
        store.close()
    return frames / (2 * visits), page


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratings", type=int, default=200)
    parser.add_argument("--idle-s", type=float, default=60)
    add_dir_option(parser)
    args = parser.parse_args(argv)
    with work_dir(args) as tmp:
        tmp = Path(tmp)
        run = service_run(tmp, args.ratings, args.idle_s)
        imports = import_times(tmp)
        frames, page = wal_frames_per_commit(tmp)
    print(f"service: `python -m terminal` on simulated hardware, {args.ratings} ratings, "
          f"{args.idle_s:.0f} s idle")
    print(line("start → READY=1 (sd_notify)", run["ready_s"], "s", START_TARGET_S))
    print(line("start → first frame", run["frame_s"], "s", START_TARGET_S))
    print(line(f"RSS after {args.ratings} ratings", run["rss_kib"] / 1024, "MiB", RSS_TARGET_MIB,
               fmt="{:.1f}"))
    print(line("written to storage per rating", run["write_per_rating"] / 1024, "KiB",
               WRITE_TARGET_KIB, fmt="{:.1f}"))
    print(line(f"WAL frames per commit ({page}-byte pages)", frames, "frames", fmt="{:.1f}"))
    print(line("CPU while idle", run["idle_pct"], "% of a core", IDLE_TARGET_PCT, fmt="{:.3f}"))
    total = sum(ms for _, ms in imports)
    print(line("imports at start, all", total, "ms", fmt="{:.0f}"))
    for name, ms in imports[:10]:
        print(line(f"  imports of {name}", ms, "ms", fmt="{:.0f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
