"""Idle: the event loop sleeps until something is due instead of turning on a timer."""
import threading
import time
from functools import partial

from config import tags
from config.settings import DisplaySettings, defaults
from drivers.display import open_display
from drivers.fonts import find_fonts
from terminal import flow, screens
from terminal.clock import SystemClock
from terminal.service import Terminal
from terminal.store import DB_NAME, Store
from tests.terminal.conftest import DEVICE_ID, SECRET


def test_an_idle_loop_turns_only_when_something_is_due(tmp_path):
    cfg = flow.FlowConfig.from_settings(defaults(), tags.builtin())  # page turns every 3 s
    store = Store(tmp_path / DB_NAME, device_id=DEVICE_ID, secret=SECRET, hash_alg="sha256",
                  boot_id="test")
    terminal = Terminal(cfg, store=store, clock=SystemClock(),
                        display=open_display(DisplaySettings(driver="dummy")),
                        render=partial(screens.render, fonts=find_fonts(())))
    turns = []
    stop = threading.Event()
    loop = threading.Thread(target=terminal.run, args=(stop, lambda: turns.append(1)), daemon=True)
    loop.start()
    try:
        time.sleep(1.6)  # nothing due before the first page turn (3 s after the start)
        assert len(turns) == 1  # the first frame's; a 0.5 s poll would have made four
        terminal.post(flow.Press(5))  # an event wakes it at once
        end = time.monotonic() + 5
        while len(turns) < 2 and time.monotonic() < end:
            time.sleep(0.01)
        assert len(turns) >= 2
    finally:
        stop.set()
        terminal.post(flow.Tick())
        loop.join(5)
        store.close()
    assert not loop.is_alive()
