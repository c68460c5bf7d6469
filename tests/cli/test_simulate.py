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
ROOT_DIR = Path(__file__).resolve().parents[2]
PINGJIA = shutil.which("pingjia", path=str(Path(sys.executable).parent))
COMMAND = [PINGJIA] if PINGJIA else [sys.executable, "-m", "config.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sim:
    """One `pingjia simulate --headless` process; its output collected line by line."""

    def __init__(self, tmp_path: Path, *extra: str, verbose: bool = False, keys_first: str = ""):
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
        if keys_first:  # typed ahead: on stdin before the simulator is up
            self.keys(keys_first)
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


def test_keys_piped_before_the_start_find_the_staff_signed_in(tmp_path, sims):
    """`n` waiting on stdin before the simulator is up: the invitation comes after the
    sample staff member's sign-in, not refused for want of one."""
    sim = Sim(tmp_path, "--no-sync", keys_first="n\n")
    sims.append(sim)
    sim.wait_status(lambda s: s["state"] == "invited", "the piped invitation")
    sim.keys("5\n")
    sim.wait_line("stored #1 level 5")
    assert not [line for line in sim.lines if "refused" in line]


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
    sim.wait_line("业务列表: 键5 上移  键4 下移  键3 选择  键2 退出  键1 确定")
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


# --- as a newcomer meets it: a terminal, a small window, the messages ----------------------

class PtySim:
    """`pingjia simulate` with a pseudo-terminal as its terminal, as a person (or an
    `expect` script) starts it: keys go in without Enter, the screen comes out."""

    def __init__(self, tmp_path: Path, *extra: str, size=(45, 140)):
        import fcntl
        import pty
        import struct
        import termios

        self.data = tmp_path / "data"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.master, self.slave = pty.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
        self.line_mode = termios.tcgetattr(self.slave)
        self.proc = subprocess.Popen(
            [*COMMAND, "simulate", "--data-dir", str(self.data), "--port", str(self.port),
             "--token", TOKEN, *extra],
            stdin=self.slave, stdout=self.slave, stderr=subprocess.PIPE, cwd=tmp_path,
            start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.output = b""
        self.wait_for(lambda: self._api_up(), "the local API", timeout=30)

    def _api_up(self) -> bool:
        try:
            return self.call("GET", "/v1/status").status_code == 200
        except requests.ConnectionError:
            return False

    def read(self, seconds: float = 0.2) -> str:
        import select
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            ready, _, _ = select.select([self.master], [], [], max(0.0, left))
            if ready:
                try:
                    self.output += os.read(self.master, 65536)
                except OSError:
                    break
            elif left <= 0:
                break
        return self.output.decode("utf-8", "replace")

    def wait_for(self, predicate, what: str, timeout: float = 10.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.read(0.1)
            value = predicate()
            if value:
                return value
            if self.proc.poll() is not None:
                break
        raise AssertionError(f"timed out waiting for {what}; screen: {self.read(0)[-2000:]!r}; "
                             f"stderr: {self.proc.stderr.read() if self.proc.poll() is not None else ''}")

    def wait_text(self, text: str, timeout: float = 10.0) -> None:
        self.wait_for(lambda: text in self.read(0), repr(text), timeout)

    def keys(self, text: str) -> None:
        os.write(self.master, text.encode("utf-8"))

    def call(self, method: str, path: str, json=None) -> requests.Response:
        return requests.request(method, self.url + path, json=json, timeout=10,
                                headers={"Authorization": f"Bearer {TOKEN}"})

    def rows(self) -> dict[int, str]:
        """The last text written at each screen row (the console addresses every row)."""
        import re
        out = {}
        for row, text in re.findall(r"\x1b\[(\d+);1H([^\x1b]*)", self.read(0)):
            out[int(row)] = text
        return out

    def resize(self, rows: int, cols: int) -> None:
        import fcntl
        import struct
        import termios
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.proc.send_signal(signal.SIGWINCH)

    def stop(self) -> tuple[int, str]:
        """SIGTERM, as systemd or a test harness stops it; (exit code, stderr)."""
        if self.proc.stderr.closed:
            return self.proc.returncode, ""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            # keep draining the panel's output: a full pty would block the last frame
            end = time.monotonic() + 20
            while self.proc.poll() is None and time.monotonic() < end:
                self.read(0.1)
            code = self.proc.wait(timeout=1)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        self.read(0.2)
        err = self.proc.stderr.read().decode("utf-8", "replace")
        self.proc.stderr.close()
        return code, err

    def close(self) -> None:
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass


@pytest.fixture
def ptys():
    started: list[PtySim] = []
    yield started
    for sim in started:
        sim.stop()
        sim.close()


def _cbreak(attrs) -> bool:
    import termios
    return not attrs[3] & termios.ICANON and not attrs[3] & termios.ECHO


def test_headless_on_a_terminal_takes_single_keys_and_gives_the_terminal_back(tmp_path, ptys):
    import termios
    sim = PtySim(tmp_path, "--headless", "--no-sync")
    ptys.append(sim)
    assert not _cbreak(sim.line_mode)
    sim.wait_text("ready:")
    assert _cbreak(termios.tcgetattr(sim.slave)), "the terminal is still in line mode"
    r = sim.call("POST", "/v1/invitations", {"visit_id": "pty-1", "items": [
        {"project_no": "330106202612010101", "task_name": "户籍迁入"}]})
    assert r.status_code == 201, r.text
    sim.keys("4")                                   # no Enter
    sim.wait_text("stored #1 level 4")
    assert sim.call("GET", "/v1/invitations/pty-1").json()["level"] == 4
    code, err = sim.stop()
    assert code == 0 and "Traceback" not in err, err
    after = termios.tcgetattr(sim.slave)
    assert after[3] == sim.line_mode[3], "the terminal was not given back in line mode"


def test_the_console_panel_says_when_the_window_is_too_small(tmp_path, ptys):
    sim = PtySim(tmp_path, "--no-sync", size=(24, 80))
    ptys.append(sim)
    sim.wait_for(lambda: 1 in sim.rows(), "the first frame")
    assert "window 80x24 is too small for the panel: make it 130x40" in sim.rows()[1]
    sim.resize(45, 140)
    sim.wait_for(lambda: sim.rows()[1].startswith("┌──"), "the redraw after the resize")


def test_the_console_keeps_messages_and_key_help_under_the_panel_and_logs_to_a_file(tmp_path, ptys):
    sim = PtySim(tmp_path, "--no-sync")
    ptys.append(sim)
    sim.wait_for(lambda: "ready:" in sim.rows().get(40, ""), "the ready line")
    rows = sim.rows()
    assert "1-5 评价" in rows[35]                              # the key line, under the frame
    under = "\n".join(rows[r] for r in range(36, 41))
    log = str(sim.data / "simulate.log")
    assert f"log file {log}" in under and "staff " in under
    sim.keys("n")
    sim.wait_for(lambda: open_state(sim) == "invited", "the invitation")
    sim.keys("n")                                              # a new one: the first is superseded
    sim.wait_for(lambda: "stored as unrated (superseded)" in "".join(sim.rows().values()),
                 "the superseded notice")
    sim.keys("2")                                              # a bad rating: the reason list
    sim.wait_for(lambda: sim.rows().get(35, "").startswith("原因页"), "the reason keys")
    assert sim.rows()[35].split(": ", 1)[1] == "键5 上移  键4 下移  键3 选择  键2 返回  键1 提交"
    sim.keys("3")                                              # key 3 ticks the first reason
    sim.keys("1")                                              # key 1 submits
    sim.wait_for(lambda: " level 2 " in "".join(sim.rows().values()), "the stored rating")
    sim.wait_for(lambda: "1-5 评价" in sim.rows().get(35, ""), "the rating keys again")
    code, err = sim.stop()
    assert code == 0 and err == "", err
    screen = sim.read(0)
    assert " INFO " not in screen and " WARNING " not in screen   # no log lines on the screen
    text = Path(log).read_text(encoding="utf-8")
    assert "local API (http) on 127.0.0.1" in text and "kind=rating level=2" in text


def open_state(sim) -> str:
    return sim.call("GET", "/v1/status").json()["state"]


def test_other_displays_print_the_messages_and_keys_plainly_without_pygame(tmp_path):
    """`--display capture` in a plain install: PNG frames need neither pygame nor
    luma.emulator (both made unimportable here), and the messages reach stdout."""
    frames = tmp_path / "frames"
    port = free_port()
    code = ("import sys; sys.modules['pygame'] = sys.modules['luma.emulator'] = None; "
            "from config.cli import main; sys.exit(main(sys.argv[1:]))")
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "simulate", "--display", "capture", "--frames", str(frames),
         "--no-sync", "--data-dir", str(tmp_path / "data"), "--port", str(port), "--token", TOKEN],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT_DIR,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        lines = []
        end = time.monotonic() + 30
        while time.monotonic() < end and not any("ready:" in x for x in lines):
            line = proc.stdout.readline().decode("utf-8")
            if not line:
                break
            lines.append(line)
        assert any(f"local API http://127.0.0.1:{port} token {TOKEN}" in x for x in lines), lines
        assert any("ready: 键 1-5 评价" in x for x in lines), lines
        proc.stdin.write(b"n")
        proc.stdin.flush()
        end = time.monotonic() + 10
        while time.monotonic() < end and len(list(frames.glob("frame_*.png"))) < 2:
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert len(list(frames.glob("frame_*.png"))) >= 2
    assert b"pygame" not in out + err and b"Traceback" not in err


def test_a_missing_pygame_is_one_line_saying_what_to_install(tmp_path):
    code = ("import sys; sys.modules['pygame'] = sys.modules['luma.emulator'] = None; "
            "from config.cli import main; sys.exit(main(sys.argv[1:]))")
    out = subprocess.run([sys.executable, "-c", code, "simulate", "--display", "pygame",
                          "--no-sync", "--data-dir", str(tmp_path), "--port", str(free_port())],
                         cwd=ROOT_DIR, capture_output=True, text=True, timeout=60,
                         stdin=subprocess.DEVNULL,
                         env={**os.environ, "SDL_VIDEODRIVER": "dummy"})
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and "pip install 'pingjia[sim]'" in out.stderr, out.stderr


def test_start_up_failures_are_one_line_with_what_to_do(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for extra, option in ((["--port", str(port), "--no-sync"], "--port"),
                              (["--port", str(free_port()), "--receiver-port", str(port)],
                               "--receiver-port")):
            out = subprocess.run([*COMMAND, "simulate", "--headless", "--data-dir",
                                  str(tmp_path / "data"), *extra], cwd=tmp_path,
                                 capture_output=True, text=True, timeout=60,
                                 stdin=subprocess.DEVNULL)
            assert out.returncode == 1
            assert "Traceback" not in out.stderr and out.stderr.count("\n") == 1, out.stderr
            assert f"port {port} is in use" in out.stderr and option in out.stderr
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    out = subprocess.run([*COMMAND, "simulate", "--headless", "--data-dir", str(blocked / "d")],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60,
                         stdin=subprocess.DEVNULL)
    assert out.returncode == 1 and out.stderr.count("\n") == 1, out.stderr
    assert "--data-dir" in out.stderr and "Traceback" not in out.stderr


def test_config_is_taken_after_the_subcommand_too(tmp_path, sims):
    config = tmp_path / "pingjia.toml"
    config.write_text('[site]\nwindow_no = "42"\n', encoding="utf-8")
    sim = Sim(tmp_path, "--no-sync", "--config", str(config))
    sims.append(sim)
    assert sim.status()["window_no"] == "42"


def test_invite_says_which_invitation_it_superseded(tmp_path, sims):
    sim = Sim(tmp_path, "--no-sync")
    sims.append(sim)
    first = sim.call("POST", "/v1/invitations", {"visit_id": "first", "items": [
        {"project_no": "330106202612010201", "task_name": "户籍迁入"}]})
    assert first.status_code == 201 and "superseded" not in first.json()
    out = subprocess.run([*COMMAND, "invite", "--port", str(sim.port), "--token", TOKEN,
                          "--item", "330106202612010202:居住证办理"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "previous invitation first stored as unrated (superseded)" in out.stdout
    sim.wait_line("stored #1 unrated (superseded)")
    assert sim.call("GET", "/v1/invitations/first").json()["state"] == "unrated"
    second = sim.status()["open_visit"]["visit_id"]
    sim.keys("2")                       # a bad rating: its reasons are being chosen
    sim.wait_line("原因页: 键5 上移  键4 下移  键3 选择  键2 返回  键1 提交")
    third = sim.call("POST", "/v1/invitations", {"visit_id": "third", "items": [
        {"project_no": "330106202612010203", "task_name": "户籍迁入"}]})
    assert third.json()["superseded"] == {"visit_id": second, "state": "rated"}
    sim.wait_line("stored #2 level 2")  # the rating given is kept


def test_a_joint_demo_case_never_holds_the_same_business_twice():
    import random
    from terminal.catalogue import sample_businesses
    for seed in range(300):
        items = sample_businesses(random.Random(seed), 2)
        assert len({b.task_name for b in items}) == 2 and len({b.project_no for b in items}) == 2


BACKGROUND = """
import os, subprocess, sys, time
master, slave = os.openpty()
os.close(os.open(os.ttyname(slave), os.O_RDWR))   # a session leader: this becomes its terminal
sim = subprocess.Popen(sys.argv[1:], stdin=slave, stdout=subprocess.PIPE, process_group=0)
line = b""
while b"ready:" not in line:
    line = sim.stdout.readline()
    if not line:
        break
time.sleep(1)
state = open(f"/proc/{sim.pid}/stat").read().rsplit(")", 1)[1].split()[0]
sim.terminate()
print(state, sim.wait(timeout=20), line.decode().strip())
"""


def test_started_in_the_background_it_leaves_the_terminal_alone(tmp_path):
    """`pingjia simulate --headless ... &` from a shell: not stopped by SIGTTOU/SIGTTIN."""
    out = subprocess.run([sys.executable, "-c", BACKGROUND, *COMMAND, "simulate", "--headless",
                          "--no-sync", "--data-dir", str(tmp_path / "data"), "--port",
                          str(free_port())], capture_output=True, text=True, timeout=90,
                         start_new_session=True)
    state, code, ready = out.stdout.split(" ", 2)
    assert state in "SR" and code == "0", out.stdout + out.stderr   # T would be stopped
    assert ready.startswith("[pingjia] ready:")
