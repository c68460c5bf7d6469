"""Chaos: the agent as a real process against a receiver that fails 30 % of uploads in
every way it knows (5xx, 429 with Retry-After, slow answers past the timeout, dropped
connections before and after storing, half-sent answers), killed with SIGKILL at random
moments and started again, while the "terminal" (this test) keeps appending records.

At the end the receiver holds every record exactly once, none was lost or rejected, and
the chain is intact. The CI run moves 3 000 records; `pytest -m soak` moves 50 000.
"""
from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from agent.receiver import Faults, Receiver
from terminal import sync_state
from terminal.wake import notify, wake_path
from terminal.store import DB_NAME, Reader
from tests.agent.conftest import (DEVICE_ID, SECRET, agent_settings_file, drafts, fill,
                                  open_store, wait_until)

ROOT = Path(__file__).resolve().parents[2]
ALL_KINDS = ("5xx", "429", "slow", "drop", "partial")
SEED = 14  # its first thirty draws hold every kind of fault


def start_agent(config: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "CREDENTIALS_DIRECTORY"}
    return subprocess.Popen([sys.executable, "-m", "agent", "--config", str(config)], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


class Writer(threading.Thread):
    """The terminal: appends records in small commits and wakes the agent after each."""

    def __init__(self, device: Path, start: int, count: int, per_commit: int, pause_s: float):
        super().__init__(daemon=True)
        self.device, self.start_at, self.count = device, start, count
        self.per_commit, self.pause_s = per_commit, pause_s
        self.error = None

    def run(self):
        try:
            with open_store(self.device) as store:
                end = self.start_at + self.count
                for i in range(self.start_at, end, self.per_commit):
                    store.append(drafts(min(self.per_commit, end - i), start=i))
                    notify(wake_path(self.device))
                    time.sleep(self.pause_s)
        except Exception as exc:  # surfaced by the test, not lost in the thread
            self.error = exc


def chaos(tmp_path: Path, *, total: int, backlog: int, batch: int, kills: int, per_commit: int,
          pause_s: float, deadline_s: float) -> dict:
    device = tmp_path / "dev"
    fill(device, backlog, per_call=2000)
    rng = random.Random(SEED)
    faults = Faults(rate=0.3, kinds=ALL_KINDS, retry_after_s=1, slow_s=1.3)
    with Receiver(tmp_path / "rx.db", devices={DEVICE_ID: {"secret": SECRET, "hash_alg": "sha256"}},
                  faults=faults, port=0, seed=SEED) as rx:
        config = agent_settings_file(tmp_path, device, rx.url, timeout_s=1, batch_size=batch,
                                     scan_interval_s=2)
        writer = Writer(device, backlog + 1, total - backlog, per_commit, pause_s)
        writer.start()
        started = time.monotonic()
        killed = 0
        while killed < kills:
            proc = start_agent(config)
            time.sleep(rng.uniform(0.4, 2.0))  # mid-batch, mid-retry, mid-commit: anywhere
            if proc.poll() is not None:
                raise AssertionError(f"the agent ended by itself: {proc.communicate()[1]}")
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            killed += 1
        proc = start_agent(config)
        try:
            writer.join(deadline_s)
            assert writer.error is None, writer.error
            wait_until(lambda: _pending(device) == 0, timeout=deadline_s - (time.monotonic() - started),
                       every=0.2, what=f"all {total} records delivered")
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        held = rx.records(DEVICE_ID)
        stats, report = rx.stats, rx.chain_report(DEVICE_ID)
    with Reader(device / DB_NAME) as r:
        ours = [rec["record_id"] for rec in r.records()]
    assert len(ours) == total
    assert len(held) == total                                       # nothing lost, nothing doubled
    assert [h["record_id"] for h in held] == ours                   # each one, in seq order
    assert report == []                                             # chain intact
    assert stats["rejected"] == 0
    with sqlite3.connect(device / DB_NAME) as conn:
        assert conn.execute("SELECT status, count(*) FROM delivery GROUP BY status").fetchall() == \
            [("delivered", total)]
    return {"stats": stats, "seconds": time.monotonic() - started}


def _pending(device: Path) -> int:
    with sqlite3.connect(device / DB_NAME, timeout=10) as conn:
        return sync_state.pending_count(conn)  # (the tail included)


def _injected(stats: dict) -> dict:
    faults = stats.get("faults", {})
    return {k: v for k, v in faults.items() if v}


@pytest.mark.slow
def test_chaos_3000_records_30_percent_faults_and_kills(tmp_path):
    result = chaos(tmp_path, total=3000, backlog=2000, batch=100, kills=4, per_commit=10,
                   pause_s=0.01, deadline_s=50)
    injected = _injected(result["stats"])
    assert sum(injected.values()) >= 8, injected
    assert len({"500", "503"} & set(injected)) and len(set(injected) - {"500", "503"}) >= 3, injected


@pytest.mark.soak
def test_chaos_50000_records_soak(tmp_path):
    result = chaos(tmp_path, total=50_000, backlog=40_000, batch=500, kills=8, per_commit=20,
                   pause_s=0.005, deadline_s=900)
    injected = _injected(result["stats"])
    print(f"\nchaos soak: 50 000 records in {result['seconds']:.1f} s, faults {injected}, "
          f"requests {result['stats'].get('requests')}")
    assert set(injected) >= {"500", "503", "429", "slow", "drop_before", "drop_after", "partial"}
