"""The sync agent: backlog drain, one-by-one baseline, rating-to-accepted latency, RSS.

    python tests/bench/bench_sync.py [--records 100000] [--sample 2000] [--latency 200]

Everything is real and on loopback: the terminal's store (SQLite, WAL, synchronous=FULL),
the agent as its own process (`python -m agent`, as the service runs it), the reference
receiver (verifying every signature and hash, storing in its own SQLite file; for the
drains in a process of its own, `pingjia receiver serve`).

- drain: a backlog of `--records` records, the agent started on it, timed from the start
  of the process until the store has nothing pending (start-up included); the agent's
  VmRSS is sampled from /proc every 20 ms meanwhile.
- one by one: the same with `batch_size = 1` on `--sample` records: the rate of one
  request per record, to compare rates (a full one-by-one run of the backlog would take
  minutes and say nothing more).
  The agent's CPU time is read from /proc too: records per agent CPU-second is what the
  agent could do against a central system that answers at once (the loopback receiver,
  verifying and storing in Python on the same machine, is usually the slower side).
- latency: the agent idle and online; a record is appended the way the terminal does it
  (commit, then the wake-up datagram) and the clock stops when the receiver holds it.
"""
from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from agent.receiver import Receiver  # noqa: E402
from agent.receiver.db import ReceiverDB  # noqa: E402
from terminal.wake import notify, wake_path  # noqa: E402
from terminal.store import DB_NAME  # noqa: E402
from terminal.sync_state import pending_count  # noqa: E402
from tests.agent.conftest import (DEVICE_ID, SECRET, agent_settings_file, drafts, fill,  # noqa: E402
                                  open_store)
from tests.bench.bench_receiver import start_receiver  # noqa: E402
from tests.bench.figures import add_dir_option, cpu_s, line, percentile, rss_kib, work_dir  # noqa: E402






def pending(device: Path) -> int:
    """Records not yet delivered, the tail without delivery rows included (schema 5: a
    rating's commit writes no row; the agent adopts them)."""
    conn = sqlite3.connect(device / DB_NAME, timeout=30)
    try:
        return pending_count(conn)
    finally:
        conn.close()


def start_agent(config: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "CREDENTIALS_DIRECTORY"}
    return subprocess.Popen([sys.executable, "-m", "agent", "--config", str(config)], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def stop_agent(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    if proc.returncode != 0:
        raise RuntimeError(f"agent exited {proc.returncode}: {err}")


def drain(work: Path, n: int, batch: int) -> tuple[float, int, float]:
    """(records per second, peak agent RSS in KiB, agent CPU seconds) for n records.

    The receiver runs as its own process here (as in a pilot): in this one it would
    share an interpreter, and so a GIL, with the sampling and polling of the benchmark."""
    device = work / f"dev-{batch}"
    fill(device, n, per_call=5000)
    rx_dir = _mkdir(work / f"rx-{batch}")
    rx_proc, url = start_receiver(rx_dir)
    try:
        config = agent_settings_file(_mkdir(work / f"cfg-{batch}"), device, url,
                                     batch_size=batch, scan_interval_s=3600)
        peak = [0]
        done = threading.Event()
        started = time.perf_counter()
        proc = start_agent(config)

        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], rss_kib(proc.pid))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            while pending(device):
                if proc.poll() is not None:
                    raise RuntimeError(f"agent ended: {proc.communicate()[1]}")
                time.sleep(0.05)
            seconds = time.perf_counter() - started
            used = cpu_s(proc.pid)
        finally:
            done.set()
            sampler.join()
            stop_agent(proc)
    finally:
        rx_proc.send_signal(signal.SIGTERM)
        rx_proc.communicate(timeout=30)
    held = ReceiverDB(rx_dir / "receiver.db")
    try:
        if held.count(DEVICE_ID) != n:
            raise RuntimeError(f"receiver holds {held.count(DEVICE_ID)} of {n}")
    finally:
        held.close()
    return n / seconds, peak[0], used


def latency(work: Path, samples: int) -> list[float]:
    """Milliseconds from the commit of a record to the receiver holding it."""
    device = work / "dev-latency"
    open_store(device).close()
    with Receiver(work / "rx-latency.db", devices={DEVICE_ID: {"secret": SECRET, "hash_alg": "sha256"}},
                  port=0) as rx:
        config = agent_settings_file(_mkdir(work / "cfg-latency"), device, rx.url,
                                     scan_interval_s=3600)
        proc = start_agent(config)
        out = []
        try:
            end = time.monotonic() + 30
            while not rx.heartbeats(DEVICE_ID):  # started and idle
                if time.monotonic() > end or proc.poll() is not None:
                    raise RuntimeError("the agent did not come up")
                time.sleep(0.02)
            with open_store(device) as store:
                for i in range(1, samples + 1):
                    started = time.perf_counter()
                    store.append(drafts(1, start=i))
                    notify(wake_path(device))
                    while rx.count(DEVICE_ID) < i:
                        time.sleep(0.001)
                    out.append((time.perf_counter() - started) * 1000)
                    time.sleep(0.01)  # a window rates every few seconds at most
        finally:
            stop_agent(proc)
    return out


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--sample", type=int, default=2000, help="records of the one-by-one run")
    parser.add_argument("--latency", type=int, default=200, help="records of the latency run")
    add_dir_option(parser)
    args = parser.parse_args(argv)
    with work_dir(args) as tmp:
        tmp = Path(tmp)
        batched, peak, cpu = drain(tmp, args.records, 500)
        single, _, _ = drain(tmp, args.sample, 1)
        lat = latency(tmp, args.latency)
    print(f"sync: drain of {args.records} records (batches of 500) and of {args.sample} one by one, "
          f"{len(lat)} online ratings; loopback reference receiver")
    print(line("drain, batches of 500", batched, "rec/s", 5000, True, "{:.0f}"))
    print(line("one request per record", single, "rec/s", fmt="{:.0f}"))
    print(line("batched / one-by-one", batched / single, "×", 20, True, "{:.1f}"))
    print(line("agent's own CPU per record (start-up included)", cpu / args.records * 1e6, "µs",
               fmt="{:.0f}"))
    print(line("rating→accepted p50 (online)", percentile(lat, 50), "ms"))
    print(line("rating→accepted p95 (online)", percentile(lat, 95), "ms", 1000, fmt="{:.1f}"))
    print(line("agent peak RSS during the drain", peak / 1024, "MiB", 30, fmt="{:.1f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
