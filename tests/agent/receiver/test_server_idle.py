"""Idle: the reference receiver's serving thread sleeps until a connection comes or it is
stopped, instead of waking on a poll interval (serve_forever wakes 20 times a second)."""
from __future__ import annotations

import socket
import threading
import time

import requests

from agent.receiver import Receiver


def _wakeups(thread: threading.Thread) -> int:
    """How often the thread has gone to sleep and been woken, from the kernel's count."""
    with open(f"/proc/self/task/{thread.native_id}/status") as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    raise AssertionError("no voluntary_ctxt_switches in /proc")


def test_an_idle_receiver_sleeps_and_stops_at_once(tmp_path):
    rx = Receiver(tmp_path / "rx.db").start()
    try:
        assert requests.get(rx.url + "/v1/nothing", timeout=5).status_code == 404
        serving = next(t for t in threading.enumerate() if t.name == "pingjia-receiver")
        time.sleep(0.2)
        before = _wakeups(serving)
        time.sleep(1.0)
        # a 0.05 s poll would be some 20 wake-ups here
        assert _wakeups(serving) - before <= 2
        assert requests.get(rx.url + "/v1/nothing", timeout=5).status_code == 404  # still serves
        port = rx.port
        started = time.monotonic()
        rx.stop()
        assert time.monotonic() - started < 1.0 and not serving.is_alive()
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0  # the port is closed
        rx.start()  # and it serves again on the same port
        assert rx.port == port
        assert requests.get(rx.url + "/v1/nothing", timeout=5).status_code == 404
    finally:
        rx.close()
