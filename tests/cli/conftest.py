"""Helpers for the technician CLI tests: the real `pingjia` command in a subprocess,
settings files in a scratch directory, a store with records, a running simulator."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from config.edit import default_text, set_many
from terminal import sync_state
from terminal.store import DB_NAME, Store
from tests.terminal.conftest import Running

ROOT = Path(__file__).resolve().parents[2]
SECRET = b"0123456789abcdef0123456789abcdef"
TOKEN = "cli-test-token-0123456789"
DEVICE_ID = "PJQ-330106-0031"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pingjia(*args, env=None, input=None, timeout=60) -> subprocess.CompletedProcess:
    """The real command, as a technician types it."""
    full = {**os.environ, **(env or {})}
    for name in ("PINGJIA_CONFIG", "PINGJIA_TOKEN", "PINGJIA_PORT", "CREDENTIALS_DIRECTORY"):
        if env is None or name not in env:
            full.pop(name, None)
    return subprocess.run([sys.executable, "-m", "config.cli", *map(str, args)], cwd=ROOT,
                          env=full, input=input, capture_output=True, text=True, timeout=timeout)


def as_json(result: subprocess.CompletedProcess):
    assert result.stdout.strip(), result.stderr
    return json.loads(result.stdout)


class Device:
    """A scratch device: settings file, data dir, secret."""

    def __init__(self, root: Path, port: int | None = None):
        self.root = root
        self.data = root / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        self.secret_file = self.data / "secret"   # where `pingjia simulate` keeps it too
        self.config = root / "pingjia.toml"
        self.port = port or free_port()
        self.config.write_text(default_text(), encoding="utf-8")
        set_many(self.config, {
            "device.id": DEVICE_ID, "device.data_dir": str(self.data),
            "device.secret_file": str(self.secret_file), "site.window_no": "07",
            "site.area_code": "330106", "buttons.pin_factory": "mock", "display.driver": "dummy",
            "sound.driver": "none", "api.bind": "127.0.0.1", "api.port": self.port,
            "api.token": TOKEN})

    @property
    def db(self) -> Path:
        return self.data / DB_NAME

    def run(self, *args, **kw) -> subprocess.CompletedProcess:
        """`pingjia <args> --config <this device's settings>`."""
        return pingjia(*args, "--config", self.config, **kw)

    def store(self) -> Store:
        if not self.secret_file.exists():
            self.secret_file.write_bytes(SECRET)
        return Store(self.db, device_id=DEVICE_ID, secret=self.secret_file.read_bytes().strip(),
                     hash_alg="sha256", boot_id="boot-cli")

    def api(self, method: str, path: str, **kw) -> requests.Response:
        return requests.request(method, f"http://127.0.0.1:{self.port}{path}", timeout=10,
                                headers={"Authorization": f"Bearer {TOKEN}"}, **kw)


def add_records(device: Device, n: int, rejected=(), delivered=()) -> list[dict]:
    """`n` rated records in the device's store; the seqs in `rejected`/`delivered` marked so."""
    from tests.terminal.flowkit import Flow, business

    store = device.store()
    try:
        out = []
        for i in range(n):
            f = Flow()
            f.invite(business(i + 1))
            f.press(5 - i % 3)  # levels 5..3: no reasons to choose
            out += store.append(f.records)
        sync_state.adopt(store.db.conn, sync_state.tail_rows(store.db, -1))  # (as the agent does)
        for status, seqs in (("rejected", rejected), ("delivered", delivered)):
            for seq in seqs:
                store.db.execute("UPDATE delivery SET status = ?, error = ? WHERE seq = ?",
                                 [status, "bad_field" if status == "rejected" else None, seq])
        return out
    finally:
        store.close()


@pytest.fixture
def device(tmp_path) -> Device:
    return Device(tmp_path / "device")


class Simulator:
    """`pingjia simulate --headless` for a device: the terminal whose API the CLI asks."""

    def __init__(self, device: Device, *extra: str):
        self.device = device
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "config.cli", "--config", str(device.config), "simulate",
             "--headless", "--no-sync", "--data-dir", str(device.data), "--port", str(device.port),
             "--token", TOKEN, *extra],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env={k: v for k, v in os.environ.items() if not k.startswith("PINGJIA_")})
        self.wait_ready()

    def wait_ready(self, timeout: float = 30) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError(f"the simulator exited: {self.proc.communicate()[1]}")
            try:
                if self.device.api("GET", "/v1/status").status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise AssertionError("the simulator did not start serving")

    def wait_for(self, predicate, timeout: float = 10, what: str = "condition"):
        return Running.wait_for(self, predicate, timeout, what)  # it only polls

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.communicate()


@pytest.fixture
def simulator(device):
    sim = Simulator(device)
    try:
        yield sim
    finally:
        sim.stop()
