"""`pingjia simulate` as a real subprocess: the documented headless form, keys on standard
input, the local API, and the whole loop (terminal → sync agent → reference receiver) from
one command; the kiosk with the simulated card reader on its keys."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from agent.receiver.db import ReceiverDB

TOKEN = "sim-test-token-0123456789abcdef"
PINGJIA = shutil.which("pingjia", path=str(Path(sys.executable).parent))
COMMAND = [PINGJIA] if PINGJIA else [sys.executable, "-m", "config.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sim:
    """One `pingjia simulate --headless` process; its output collected line by line."""

    def __init__(self, tmp_path: Path, *extra: str, verbose: bool = False):
        self.data = tmp_path / "data"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stderr_path = tmp_path / "stderr.txt"
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            [*COMMAND, *(["-vv"] if verbose else []), "simulate", "--headless", "--data-dir", str(self.data),
             "--port", str(self.port), "--token", TOKEN, *extra],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
            cwd=tmp_path, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.wait_line("ready:", timeout=30)

    def _read(self) -> None:
        for raw in self.proc.stdout:
            self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def wait_line(self, text: str, timeout: float = 10.0) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for line in list(self.lines):
                if text in line:
                    return line
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no line with {text!r}; output: {self.lines}; stderr: "
                             f"{self.stderr_path.read_text(errors='replace')}")

    def keys(self, text: str) -> None:
        self.proc.stdin.write(text.encode("utf-8"))
        self.proc.stdin.flush()

    def call(self, method: str, path: str, json=None) -> requests.Response:
        return requests.request(method, self.url + path, json=json, timeout=10,
                                headers={"Authorization": f"Bearer {TOKEN}"})

    def status(self) -> dict:
        r = self.call("GET", "/v1/status")
        assert r.status_code == 200, r.text
        return r.json()

    def wait_status(self, predicate, what: str, timeout: float = 10.0) -> dict:
        end = time.monotonic() + timeout
        status = {}
        while time.monotonic() < end:
            status = self.status()
            if predicate(status):
                return status
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; last status: {status}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=15)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._stderr.close()
        self._reader.join(timeout=5)
        return code

    def receiver_records(self, device_id: str) -> tuple[list[dict], list[dict]]:
        db = ReceiverDB(self.data / "receiver" / "receiver.db")
        try:
            return db.records(device_id), db.chain_report(device_id)
        finally:
            db.close()


@pytest.fixture
def sims():
    started: list[Sim] = []
    yield started
    for sim in started:
        sim.stop()


def test_help_documents_the_headless_form_and_every_key():
    out = subprocess.run([*COMMAND, "simulate", "--help"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "--headless --data-dir DIR --port PORT --token TOKEN" in text
    for option in ("--no-sync", "--mode"):
        assert option in text
    for key in ("1-5", "c ", "f ", "u ", "x ", "o ", "n "):
        assert f"\n  {key}" in text, key


def test_an_invited_rating_from_stdin_reaches_the_embedded_receiver(tmp_path, sims):
    sim = Sim(tmp_path)
    sims.append(sim)
    assert "reference receiver http://127.0.0.1:" in sim.wait_line("reference receiver")
    items = [{"project_no": "330106202612010001", "task_name": "不动产登记（转移登记）",
              "dept_name": "区自然资源和规划分局"}]
    r = sim.call("POST", "/v1/invitations", {"visit_id": "sim-v1", "items": items})
    assert r.status_code == 201, r.text
    sim.keys("5\n")
    sim.wait_line("stored #1 level 5")
    r = sim.call("GET", "/v1/invitations/sim-v1")
    assert r.json()["state"] == "rated" and r.json()["level"] == 5
    status = sim.wait_status(lambda s: s["queue_depth"] == 0 and s["last_upload_at"],
                             "the agent to deliver the record")
    assert status["records"] == 1 and status["rejected"] == 0
    device_id = status["device_id"]
    assert sim.stop() == 0
    (record,), report = sim.receiver_records(device_id)
    assert report == []
    assert record["visit_id"] == "sim-v1" and record["level"] == 5
    assert record["project_no"] == "330106202612010001" and record["channel"] == "window"
    assert (sim.data / "pingjia.db").exists()
    assert "Traceback" not in sim.stderr_path.read_text(errors="replace")


def test_no_sync_runs_the_terminal_alone(tmp_path, sims):
    sim = Sim(tmp_path, "--no-sync")
    sims.append(sim)
    sim.wait_line("--no-sync")
    r = sim.call("POST", "/v1/invitations", {"visit_id": "v2", "items": [
        {"project_no": "330106202612010002", "task_name": "户籍迁入"}]})
    assert r.status_code == 201, r.text
    sim.keys("4")
    sim.wait_line("stored #1 level 4")
    time.sleep(0.5)
    status = sim.status()
    assert status["queue_depth"] == 1 and status["last_upload_at"] is None
    assert sim.stop() == 0
    assert not (sim.data / "receiver").exists()


def test_kiosk_keys_drive_the_simulated_reader_through_the_whole_loop(tmp_path, sims):
    sim = Sim(tmp_path, "--mode", "kiosk")
    sims.append(sim)
    assert "c 放身份证" in sim.wait_line("ready:")
    assert "/idcard" in sim.wait_line("simulated ID-card reader on")
    state = lambda want: (lambda s: s["state"] == want)  # noqa: E731
    sim.wait_status(lambda s: s["hardware"]["reader"]["state"] == "connected", "the reader")
    assert sim.status()["mode"] == "kiosk"

    sim.keys("c")                       # the sample resident card: three businesses found
    sim.wait_status(state("choosing"), "the business list")
    sim.keys("3")                       # the middle button takes the first business
    sim.wait_status(state("invited"), "the rating screen")
    sim.keys("4")
    line = sim.wait_line("stored #1 level 4")
    assert "[kiosk, real name]" in line and "不动产登记" in line
    status = sim.wait_status(lambda s: s["queue_depth"] == 0 and s["last_upload_at"],
                             "the agent to deliver the record")

    sim.keys("u")                       # a card that cannot be read
    sim.wait_status(state("notice"), "the unreadable-card screen")
    sim.keys("1")
    sim.wait_status(state("idle"), "idle after a key")
    sim.keys("xx")                      # take the card away, then unplug the reader
    sim.wait_status(lambda s: s["hardware"]["reader"]["state"] == "disconnected", "unplugged")
    sim.keys("x")
    sim.wait_status(lambda s: s["hardware"]["reader"]["state"] == "connected", "replugged",
                    timeout=15)

    sim.keys("o")                       # the receiver goes off line: the lookup fails
    sim.wait_line("receiver off line")
    sim.keys("c")
    sim.wait_status(state("notice"), "the network screen", timeout=15)
    sim.keys("o")
    sim.wait_line("receiver on line again")

    device_id = status["device_id"]
    assert sim.stop() == 0
    (record,), report = sim.receiver_records(device_id)
    assert report == []
    assert record["channel"] == "kiosk" and record["real_name"] is True
    assert record["level"] == 4 and record["task_name"].startswith("不动产登记")
    output = "\n".join(sim.lines) + sim.stderr_path.read_text(errors="replace")
    assert "11010519491231002X" not in output and "张三" not in output
    assert "Traceback" not in output
