"""`pingjia terminal` under systemd's protocol: READY=1 after the first frame, WATCHDOG=1
from the event loop (and none when it is stuck), STOPPING=1 and a clean stop on SIGTERM
that leaves the out-of-service frame."""
from __future__ import annotations

import ctypes
import subprocess
import sys
import threading
import time

import pytest
from PIL import Image, ImageChops

from drivers.fonts import find_fonts
from terminal import flow, screens
from terminal.sdnotify import Notifier
from terminal.serve import LoopHeartbeat
from tests.ops.conftest import ROOT, get_status, sim_config, start_terminal, stop
from tests.terminal.conftest import start_terminal as start_in_process


def last_frame(frames_dir) -> Image.Image:
    files = sorted(frames_dir.glob("frame_*.png"))
    assert files, "no frame captured"
    return Image.open(files[-1])


def same_picture(a: Image.Image, b: Image.Image) -> bool:
    return ImageChops.difference(a.convert("L"), b.convert("L")).getbbox() is None


@pytest.mark.slow
def test_service_is_ready_pings_and_stops_cleanly(tmp_path, notify):
    config = sim_config(tmp_path)
    proc = start_terminal(config, notify.env(watchdog_usec=2_000_000))
    try:
        ready = notify.wait_for("READY=1")
        assert "STATUS=serving window 07 (window)" in ready
        # READY comes after the first frame
        assert list((tmp_path / "frames").glob("frame_*.png"))
        notify.wait_for("WATCHDOG=1")
        # every second (half the 2 s period); the idle loop turns every 0.5 s
        pings = [m for m in notify.drain(2.6) if m == "WATCHDOG=1"]
        assert 2 <= len(pings) <= 3, pings
        assert get_status(config)["state"] == "idle"
    finally:
        code, err = stop(proc)
    assert code == 0, err
    assert any("STOPPING=1" in m for m in notify.drain(0.2) + notify.received)
    fonts = find_fonts(())
    expected = screens.render_out_of_service((128, 64), "1", fonts)
    assert same_picture(last_frame(tmp_path / "frames"), expected)


@pytest.mark.slow
def test_startup_error_exits_1_and_says_why(tmp_path, notify):
    config = sim_config(tmp_path)
    (tmp_path / "secret").unlink()
    proc = start_terminal(config, notify.env())
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "no device secret" in err and "Traceback" not in err
    assert not any("READY=1" in m for m in notify.drain(0.2))
    assert any(m.startswith("STATUS=failed: no device secret") for m in notify.received)


class FakeNotifier:
    def __init__(self, interval):
        self.watchdog_interval_s = interval
        self.sent: list[str] = []

    def ready(self, status=""):
        self.sent.append("READY=1")

    def watchdog(self):
        self.sent.append("WATCHDOG=1")


def test_heartbeat_ready_once_then_pings_at_the_interval():
    now = [100.0]
    notifier = FakeNotifier(interval=15.0)
    beat = LoopHeartbeat(notifier, "serving", clock=lambda: now[0])
    beat()
    beat()
    assert notifier.sent == ["READY=1", "WATCHDOG=1"]
    now[0] += 14.9
    beat()
    assert notifier.sent.count("WATCHDOG=1") == 1
    now[0] += 0.2
    beat()
    assert notifier.sent == ["READY=1", "WATCHDOG=1", "WATCHDOG=1"]


def test_heartbeat_without_watchdog_only_reports_ready():
    notifier = FakeNotifier(interval=None)
    beat = LoopHeartbeat(notifier, "serving")
    for _ in range(3):
        beat()
    assert notifier.sent == ["READY=1"]


@pytest.mark.slow
def test_a_stuck_event_loop_stops_the_watchdog_pings(tmp_path, notify):
    """The ping runs on the loop's own thread: while a turn hangs (here the display
    blocks inside a redraw), no WATCHDOG=1 goes out, and systemd would restart us."""
    running, close = start_in_process(tmp_path, run_flow=False)
    terminal = running.terminal
    # pings at most every 50 ms, at least once per loop turn (0.5 s when idle)
    notifier = Notifier({"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "100000"})
    release = threading.Event()
    show = terminal.display.show

    def stuck_show(image):
        release.wait(10)
        return show(image)

    stop_loop = threading.Event()
    loop = threading.Thread(target=terminal.run, name="flow",
                            args=(stop_loop, LoopHeartbeat(notifier, "test")), daemon=True)
    loop.start()
    try:
        notify.wait_for("READY=1", timeout=5)
        assert sum(m == "WATCHDOG=1" for m in notify.drain(1.2)) >= 2
        terminal.display.show = stuck_show
        terminal.post(flow.Press(5))  # idle: a hint screen, so a redraw that hangs
        time.sleep(0.6)  # a ping of the turn before may still be under way
        notify.drain(0.05)
        assert [m for m in notify.drain(1.5) if m == "WATCHDOG=1"] == []
        release.set()
        assert sum(m == "WATCHDOG=1" for m in notify.drain(1.2)) >= 2
    finally:
        release.set()
        stop_loop.set()
        terminal.post(flow.Tick())
        loop.join(5)
        close()


PR_SET_MDWE, PR_GET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 66, 1
_MDWE_WRAPPER = f"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0) != 0 or libc.prctl({PR_GET_MDWE}, 0, 0, 0, 0) != 1:
    sys.exit(77)
os.execv(sys.executable, [sys.executable] + sys.argv[1:])
"""


def _kernel_has_mdwe() -> bool:
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(PR_GET_MDWE, 0, 0, 0, 0) >= 0


@pytest.mark.slow
@pytest.mark.skipif(not _kernel_has_mdwe(), reason="kernel before 6.3: no PR_SET_MDWE")
def test_the_terminal_runs_with_write_xor_execute_memory(tmp_path, notify):
    """MemoryDenyWriteExecute=yes in the unit: the whole terminal (CPython, Pillow,
    pygame for the captured frames, sqlite) starts, serves and stops without ever
    needing writable and executable memory. The kernel's own W^X switch (inherited
    over exec) stands in for systemd's filter."""
    import os
    config = sim_config(tmp_path)
    env = {**os.environ, **notify.env()}
    proc = subprocess.Popen([sys.executable, "-c", _MDWE_WRAPPER, "-m", "config.cli", "--config",
                             str(config), "terminal"], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        notify.wait_for("READY=1")
        assert get_status(config)["state"] == "idle"
    finally:
        code, err = stop(proc)
    assert code == 0, err


def test_closing_the_runtime_releases_every_part_and_leaves_the_out_of_service_frame(tmp_path):
    """What the service does after SIGTERM, in-process: the out-of-service frame stays
    on the panel, and the buttons, LEDs, pins, display and the API port are all
    released (a restarted service can take them again), and closing twice is harmless."""
    import socket
    from config import settings as config_settings
    from terminal.runtime import Runtime
    from tests.ops.conftest import api_url

    config = sim_config(tmp_path)
    settings = config_settings.load(config)
    runtime = Runtime(settings)
    factory, panel, display = runtime.pin_factory, runtime.panel, runtime.display
    runtime.terminal.start()
    assert any(factory._reservations.values())  # the buttons and LEDs hold their pins
    runtime.close()

    assert panel.closed and display.closed
    assert not any(factory._reservations.values())
    expected = screens.render_out_of_service((128, 64), "1", find_fonts(()))
    assert same_picture(last_frame(tmp_path / "frames"), expected)
    port = int(api_url(config).rsplit(":", 1)[1])
    with socket.socket() as s:  # the local API's port is free again
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
    runtime.close()  # idempotent
    # a second terminal can open the same parts at once
    again = Runtime(settings)
    again.close()


@pytest.mark.slow
def test_the_agent_service_is_ready_pings_and_stops_cleanly(tmp_path, notify):
    """`python -m agent` as pingjia-agent.service runs it: READY=1, WATCHDOG=1 pings while
    the central system is unreachable (backoff waits are cut into watchdog-sized
    pieces), STOPPING=1 and exit 0 on SIGTERM."""
    import os
    import signal
    from tests.ops.conftest import free_port, make_store
    config = sim_config(tmp_path)
    make_store(tmp_path / "data", 3)  # the terminal made the database; three records wait
    with open(config, "a", encoding="utf-8") as f:
        f.write(f'[central]\nurl = "http://127.0.0.1:{free_port()}"\ntimeout_s = 1\n')
    env = {**os.environ, **notify.env(watchdog_usec=2_000_000), "PINGJIA_CONFIG": str(config)}
    env.pop("CREDENTIALS_DIRECTORY", None)
    proc = subprocess.Popen([sys.executable, "-m", "agent"], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        notify.wait_for("READY=1")
        pings = [m for m in notify.drain(4.2) if "WATCHDOG=1" in m.split("\n")]
        assert len(pings) >= 2, notify.received
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert any("STOPPING=1" in m.split("\n") for m in notify.drain(0.2) + notify.received)


# --- no panel at start; the frame after a crash; a run by hand ----------------------------

def no_panel_config(tmp_path):
    """A real SSD1306 on an I2C bus this machine does not have: the panel is absent."""
    config = sim_config(tmp_path, driver="ssd1306")
    text = config.read_text(encoding="utf-8").replace('driver = "ssd1306"',
                                                      'driver = "ssd1306"\ni2c_port = 19')
    config.write_text(text, encoding="utf-8")
    return config


@pytest.mark.slow
def test_a_terminal_without_a_panel_runs_reports_it_and_takes_ratings(tmp_path):
    import requests
    from config import settings as config_settings
    from terminal.runtime import Runtime
    from tests.ops.conftest import TOKEN, api_url

    config = no_panel_config(tmp_path)
    runtime = Runtime(config_settings.load(config))
    stop_loop = threading.Event()
    loop = threading.Thread(target=runtime.run, args=(stop_loop,), daemon=True)
    loop.start()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    try:
        status = get_status(config)
        display = status["hardware"]["display"]
        assert display["present"] is False and "I2C bus 19" in display["last_error"]
        r = requests.post(api_url(config) + "/v1/invitations", headers=headers, timeout=5,
                          json={"items": [{"project_no": "NP-1", "task_name": "营业执照"}],
                                "staff": {"id": "S01", "name": "王五"}})
        assert r.status_code == 201, r.text
        visit = r.json()["visit_id"]
        runtime.panel.simulate(5)                      # the buttons work without a screen
        deadline = time.monotonic() + 5
        while True:
            answer = requests.get(f"{api_url(config)}/v1/invitations/{visit}",
                                  headers=headers, timeout=5).json()
            if answer["state"] != "open" or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert answer["state"] == "rated" and answer["level"] == 5, answer
    finally:
        stop_loop.set()
        loop.join(5)
        runtime.close()


def run_out_of_service(config, **env):
    import os
    full = {k: v for k, v in os.environ.items() if k not in ("SERVICE_RESULT", "EXIT_CODE")}
    return subprocess.run([sys.executable, "-m", "config.cli", "--config", str(config),
                           "out-of-service", "--if-failed"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={**full, **env})


@pytest.mark.slow
@pytest.mark.parametrize("result,code", [("watchdog", "dumped"), ("signal", "killed"),
                                         ("exit-code", "exited")])
def test_after_a_crash_the_stop_step_draws_the_out_of_service_frame(tmp_path, result, code):
    config = sim_config(tmp_path)
    done = run_out_of_service(config, SERVICE_RESULT=result, EXIT_CODE=code)
    assert done.returncode == 0, done.stderr
    expected = screens.render_out_of_service((128, 64), "1", find_fonts(()))
    assert same_picture(last_frame(tmp_path / "frames"), expected)
    assert not (tmp_path / "data" / "pingjia.db").exists()   # the display only


@pytest.mark.slow
def test_after_a_clean_stop_the_stop_step_does_nothing(tmp_path):
    config = sim_config(tmp_path)
    done = run_out_of_service(config, SERVICE_RESULT="success", EXIT_CODE="exited")
    assert done.returncode == 0, done.stderr
    assert not list((tmp_path / "frames").glob("frame_*.png"))


@pytest.mark.slow
def test_a_run_by_hand_takes_the_secret_on_standard_input(tmp_path, notify):
    from tests.ops.conftest import SECRET
    config = sim_config(tmp_path)
    (tmp_path / "secret").unlink()                 # as for a technician: root-only file
    import os
    env = {**os.environ, **notify.env()}
    env.pop("CREDENTIALS_DIRECTORY", None)
    proc = subprocess.Popen([sys.executable, "-m", "config.cli", "--config", str(config),
                             "terminal", "--secret-file", "-"], cwd=ROOT, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        proc.stdin.write(SECRET.decode() + "\n")
        proc.stdin.close()
        proc.stdin = None  # nothing more to send: communicate() must not touch it
        notify.wait_for("READY=1")
        assert get_status(config)["device_id"]
    finally:
        code, err = stop(proc)
    assert code == 0, err
