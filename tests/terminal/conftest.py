"""A real terminal with its local API on 127.0.0.1, port 0: assembled as the service does.

Real flow thread, real SQLite store, real screens drawn on luma's dummy display; only the
buttons are replaced by posting `Press` events, which is what the button driver does.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest
import requests

from config import tags
from config.settings import DisplaySettings, defaults
from drivers.display import open_display
from drivers.fonts import find_fonts
from terminal import flow, screens
from terminal.api import ApiServer
from terminal.clock import SystemClock
from terminal.service import Terminal
from terminal.store import DB_NAME, Reader, Store

TOKEN = "test-token-0123456789abcdef"
SECRET = b"0123456789abcdef0123456789abcdef"
DEVICE_ID = "PJQ-330106-0007"


@dataclass
class Running:
    """A running terminal and how to talk to it."""
    terminal: Terminal
    api: ApiServer
    db_path: Path
    url: str
    token: str = TOKEN

    @property
    def auth(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}

    def call(self, method: str, path: str, json=None, **kw) -> requests.Response:
        headers = {**self.auth, **kw.pop("headers", {})}
        return requests.request(method, self.url + path, json=json, headers=headers,
                                timeout=kw.pop("timeout", 10), **kw)

    def press(self, level: int) -> None:
        self.terminal.post(flow.Press(level))

    def records(self) -> list[dict]:
        with Reader(self.db_path) as r:
            return list(r.records())

    def wait_for(self, predicate, timeout: float = 5.0, what: str = "condition"):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            value = predicate()
            if value:
                return value
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}")


def start_terminal(tmp_path: Path, *, max_body_bytes: int = 65536, require_staff: bool = True,
                   run_flow: bool = True, api_values=None, **api_kw) -> tuple[Running, callable]:
    """A terminal and its API; `api_values` are more [api] settings (allow_origins,
    tls_cert, ...), `api_kw` go to ApiServer (client_timeout, status, ...)."""
    settings = defaults().with_values({
        "device": {"id": DEVICE_ID},
        "site": {"window_no": "07", "area_code": "330106", "require_staff": require_staff},
        "api": {"bind": "127.0.0.1", "port": 8410, "token": TOKEN, "max_body_bytes": max_body_bytes,
                **(api_values or {})},
    })
    db_path = tmp_path / DB_NAME
    store = Store(db_path, device_id=DEVICE_ID, secret=SECRET, hash_alg="sha256", boot_id="test")
    display = open_display(DisplaySettings(driver="dummy"))
    terminal = Terminal(flow.FlowConfig.from_settings(settings, tags.builtin()), store=store,
                        clock=SystemClock(), display=display,
                        render=partial(screens.render, fonts=find_fonts(())))
    stop = threading.Event()
    thread = threading.Thread(target=terminal.run, args=(stop,), name="flow", daemon=True)
    if run_flow:
        thread.start()
    api = ApiServer(settings.api, terminal, db_path, TOKEN, port=0, **api_kw)
    api.start()

    def close():
        api.stop()
        stop.set()
        terminal.post(flow.Tick())  # wakes the loop so it sees the stop at once
        if run_flow:
            thread.join(timeout=5)
        store.close()

    return Running(terminal, api, db_path, f"{api.scheme}://127.0.0.1:{api.port}"), close


@pytest.fixture
def running(tmp_path):
    run, close = start_terminal(tmp_path)
    try:
        yield run
    finally:
        close()


@pytest.fixture
def staffed(running):
    """A running window terminal with a staff member signed in."""
    r = running.call("PUT", "/v1/staff", {"id": "0131", "name": "王芳"})
    assert r.status_code == 200, r.text
    return running
