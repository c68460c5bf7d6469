"""Helpers for the field-operations tests: a systemd notify socket, a simulation
config for `pingjia terminal`, a store with records, and running the real command."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests

from terminal.store import DB_NAME, Store

ROOT = Path(__file__).resolve().parents[2]
SECRET = b"0123456789abcdef0123456789abcdef"
TOKEN = "ops-test-token-0123456789"
DEVICE_ID = "PJQ-330106-0042"


class NotifySocket:
    """What systemd's $NOTIFY_SOCKET receives, one datagram per message."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="pjn")  # short: AF_UNIX paths are limited
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.received: list[str] = []

    def env(self, watchdog_usec: int | None = None) -> dict:
        env = {"NOTIFY_SOCKET": self.path}
        if watchdog_usec:
            env["WATCHDOG_USEC"] = str(watchdog_usec)
        return env

    def wait_for(self, field: str, timeout: float = 20.0) -> str:
        """The first message (from now on, or already received) holding `field`."""
        for msg in self.received:
            if field in msg.split("\n"):
                return msg
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            msg = self.read(end - time.monotonic())
            if msg is not None and field in msg.split("\n"):
                return msg
        raise AssertionError(f"no {field} within {timeout} s; got {self.received!r}")

    def read(self, timeout: float) -> str | None:
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(4096)
        except socket.timeout:
            return None
        msg = data.decode("utf-8")
        self.received.append(msg)
        return msg

    def drain(self, seconds: float) -> list[str]:
        got, end = [], time.monotonic() + seconds
        while time.monotonic() < end:
            msg = self.read(end - time.monotonic())
            if msg is not None:
                got.append(msg)
        return got

    def close(self):
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def notify():
    ns = NotifySocket()
    try:
        yield ns
    finally:
        ns.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sim_config(tmp_path: Path, port: int | None = None, driver: str = "capture") -> Path:
    """A settings file for `pingjia terminal` on simulated hardware, chosen explicitly."""
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    secret = tmp_path / "secret"
    secret.write_bytes(SECRET)
    path = tmp_path / "pingjia.toml"
    path.write_text(f"""
[device]
id = "{DEVICE_ID}"
data_dir = "{data}"
secret_file = "{secret}"
[site]
window_no = "07"
area_code = "330106"
[buttons]
pin_factory = "mock"
[display]
driver = "{driver}"
output_dir = "{tmp_path / 'frames'}"
[api]
bind = "127.0.0.1"
port = {port or free_port()}
token = "{TOKEN}"
""", encoding="utf-8")
    return path


def api_url(config: Path) -> str:
    import tomllib
    port = tomllib.loads(config.read_text(encoding="utf-8"))["api"]["port"]
    return f"http://127.0.0.1:{port}"


def get_status(config: Path) -> dict:
    r = requests.get(api_url(config) + "/v1/status", timeout=5,
                     headers={"Authorization": f"Bearer {TOKEN}"})
    r.raise_for_status()
    return r.json()


def start_terminal(config: Path, env: dict) -> subprocess.Popen:
    """The terminal as systemd runs it (`python -m terminal`, the same as `pingjia
    terminal`), in its own process."""
    full = {**os.environ, **env}
    full.pop("CREDENTIALS_DIRECTORY", None)
    return subprocess.Popen([sys.executable, "-m", "terminal", "--config", str(config)],
                            cwd=ROOT, env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def stop(proc: subprocess.Popen, timeout: float = 20) -> tuple[int, str]:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"the terminal did not stop on SIGTERM within {timeout} s:\n{err}")
    return proc.returncode, err


def drafts(n: int = 1, level: int = 5) -> list[dict]:
    from tests.terminal.flowkit import Flow, business
    f = Flow()
    f.invite(*[business(i) for i in range(1, n + 1)])
    f.press(level)
    return f.records


def make_store(data_dir: Path, records: int, delivered: int = 0, batch: int = 10) -> str:
    """A database with `records` records, the first `delivered` of them delivered;
    checkpointed into the main file. Returns the chain id."""
    store = Store(data_dir / DB_NAME, device_id=DEVICE_ID, secret=SECRET, hash_alg="sha256",
                  boot_id="boot-1")
    try:
        left = records
        while left:
            n = min(batch, left)
            store.append(drafts(n))
            left -= n
        store.db.execute("UPDATE delivery SET status = 'delivered' WHERE seq <= ?", [delivered])
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return store.chain_id
    finally:
        store.close()
