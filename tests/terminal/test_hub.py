"""terminal/hub.py and its place in the flow's turn: readers of the event streams are
woken once the turn's frame is on the panel, not while it is drawn (woken earlier, each
stream's thread took the interpreter from the frame: press to frame +60-90 % at p99 with
8 streams open, make bench)."""
from __future__ import annotations

import threading
import time

from terminal.hub import Hub
from tests.terminal.conftest import start_terminal
from tests.terminal.test_api import wait_state

STAFF = {"id": "0131", "name": "王芳"}


def _reader(hub: Hub, sub, got: list) -> threading.Thread:
    def read():
        events = hub.take(sub, timeout=5)
        got.append((time.monotonic(), events))
    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def test_an_event_published_without_waking_waits_for_wake():
    hub = Hub(max_open=4)
    sub = hub.subscribe()
    got: list = []
    reader = _reader(hub, sub, got)
    time.sleep(0.05)  # the reader waits
    hub.publish("outcome", {"visit_id": "v1"}, wake=False)
    reader.join(0.3)
    assert got == [] and reader.is_alive()
    hub.wake()
    reader.join(2)
    assert [e.name for e in got[0][1]] == ["outcome"]
    hub.wake()  # nothing new: a no-op


def test_an_event_published_as_ever_wakes_at_once():
    hub = Hub(max_open=4)
    sub = hub.subscribe()
    got: list = []
    reader = _reader(hub, sub, got)
    time.sleep(0.05)
    hub.publish("window", {"state": "open"})
    reader.join(2)
    assert [e.name for e in got[0][1]] == ["window"]


def test_the_streams_hear_of_a_rating_after_its_frame_is_shown(tmp_path):
    run, close = start_terminal(tmp_path)
    try:
        run.call("PUT", "/v1/staff", STAFF)
        r = run.call("POST", "/v1/invitations", {"visit_id": "v-hub", "items": [
            {"project_no": "330106-hub-1", "task_name": "社会保障卡申领"}]})
        assert r.status_code == 201, r.text
        time.sleep(0.1)
        display, shown = run.terminal.display, []
        plain_show = display.show

        def slow_show(image):  # a slow bus: the frame of the rating takes 0.3 s
            time.sleep(0.3)
            shown.append(time.monotonic())
            return plain_show(image)

        hub = run.api.ops.hub
        sub = hub.subscribe()
        got: list = []
        display.show = slow_show
        reader = _reader(hub, sub, got)
        time.sleep(0.05)
        run.press(5)
        reader.join(5)
        wait_state(run, "v-hub", "rated")
        display.show = plain_show
        woken_at, events = got[0]
        assert "outcome" in [e.name for e in events]
        assert shown and woken_at >= shown[0]  # after the frame, not during it
    finally:
        close()
