"""Slow clients cannot keep others out of the local API (issue 10, part 3).

Real terminal, real sockets. The attacker's connections come from 127.0.0.2 (Linux
answers the whole 127.0.0.0/8 on loopback), the honest callers from 127.0.0.1.
"""
from __future__ import annotations

import select
import socket
import threading
import time

import pytest
import requests

from tests.terminal.conftest import TOKEN, start_terminal
from tests.terminal.test_api import item, raw, wait_state

ATTACKER = "127.0.0.2"


class Tricklers:
    """`n` connections from `source` that send a request head one byte every `gap`
    seconds, and connect again whenever the server ends one."""

    def __init__(self, port: int, n: int = 64, source: str = ATTACKER, gap: float = 1.0,
                 head: bytes = b"GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 200):
        self.port, self.source, self.gap, self.head = port, source, gap, head
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.refused = 0          # answered 503 at once
        self.cut = []             # seconds a connection lasted before the server ended it
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(n)]

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=5)

    def _run(self):
        while not self.stop.is_set():
            s = socket.socket()
            try:
                s.bind((self.source, 0))
                s.connect(("127.0.0.1", self.port))
                started = time.monotonic()
                for i in range(len(self.head)):
                    if self.stop.is_set():
                        return
                    s.send(self.head[i:i + 1])
                    readable, _, _ = select.select([s], [], [], self.gap)
                    if readable:  # the server answered or closed: this one is over
                        answer = s.recv(64)
                        with self.lock:
                            if answer.startswith(b"HTTP/1.1 503"):
                                self.refused += 1
                            else:
                                self.cut.append(time.monotonic() - started)
                        break
            except OSError:
                with self.lock:
                    self.cut.append(time.monotonic() - started)
            finally:
                s.close()
            self.stop.wait(0.2)


def test_64_trickling_connections_from_one_address_do_not_keep_others_out(tmp_path):
    run, close = start_terminal(tmp_path)
    try:
        assert run.call("PUT", "/v1/staff", {"id": "1", "name": "王芳"}).status_code == 200
        with Tricklers(run.api.port) as attack:
            time.sleep(1.5)  # every attacking connection is open and trickling
            slowest, n = 0.0, 0
            end = time.monotonic() + 8  # past the head deadline: the cut ones come back
            while time.monotonic() < end:
                started = time.monotonic()
                r = run.call("GET", "/v1/status", timeout=2)
                assert r.status_code == 200, r.text
                slowest, n = max(slowest, time.monotonic() - started), n + 1
                time.sleep(0.1)
            started = time.monotonic()
            assert run.call("POST", "/v1/invitations", {"items": [item(1)], "visit_id": "v"},
                            timeout=2).status_code == 201
            run.press(5)
            assert wait_state(run, "v", "rated")["level"] == 5
            assert time.monotonic() - started < 2
        assert slowest < 2 and n > 20
        assert run.records()[0]["visit_id"] == "v"
        assert attack.refused > 0, "beyond the per-address cap, connections get 503 at once"
        assert attack.cut and min(attack.cut) > 3, "the held ones are cut at the head deadline"
    finally:
        close()


def test_a_head_trickled_byte_by_byte_is_cut_at_its_deadline(tmp_path):
    run, close = start_terminal(tmp_path, head_deadline=1.0)
    try:
        with Tricklers(run.api.port, n=1, source="127.0.0.1", gap=0.2) as slow:
            run.wait_for(lambda: slow.cut, timeout=6, what="the slow head to be cut")
        # each byte came well within the idle timeout (10 s): only the deadline ends it
        assert 0.9 < slow.cut[0] < 4
    finally:
        close()


def test_a_trickled_body_is_cut_at_its_deadline(tmp_path):
    run, close = start_terminal(tmp_path, body_deadline=1.0)
    try:
        s = socket.create_connection(("127.0.0.1", run.api.port), timeout=5)
        s.sendall(b"PUT /v1/staff HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKEN.encode()
                  + b"\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n")
        started, reply = time.monotonic(), b""
        while not reply:
            s.send(b" ")
            if select.select([s], [], [], 0.2)[0]:
                reply = s.recv(4096)
        assert time.monotonic() - started < 4
        while chunk := s.recv(4096):  # the rest of the answer, until the server closes
            reply += chunk
        assert reply.startswith(b"HTTP/1.1 408") and b'"timeout"' in reply
        s.close()
    finally:
        close()


@pytest.mark.parametrize("header", [
    b"Content-Length: +5", b"Content-Length: 5_0", b"Content-Length: 0x5", b"Content-Length: 5 5",
    b"Content-Length: 5\r\nContent-Length: 5", b"Content-Length: -1", b"Content-Length: \xd9\xa5",
])
def test_content_length_is_digits_only_and_once(running, header):
    answer = raw(running, b"PUT /v1/staff HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                 + TOKEN.encode() + b"\r\nContent-Type: application/json\r\n" + header
                 + b"\r\n\r\n{}   ")
    assert answer.startswith(b"HTTP/1.1 400") and b'"invalid_request"' in answer, answer
    assert b"Content-Length" in answer
    assert running.call("GET", "/v1/status").json()["staff"] is None


def test_one_address_may_hold_only_its_share(tmp_path):
    run, close = start_terminal(tmp_path, max_connections=6, max_per_address=2)
    held = []
    try:
        for _ in range(2):
            s = socket.socket()
            s.bind((ATTACKER, 0))
            s.connect(("127.0.0.1", run.api.port))
            held.append(s)
        third = socket.socket()
        third.bind((ATTACKER, 0))
        third.connect(("127.0.0.1", run.api.port))
        third.settimeout(2)
        assert third.recv(64).startswith(b"HTTP/1.1 503")
        third.close()
        assert requests.get(run.url + "/v1/status", headers=run.auth, timeout=2).status_code == 200
    finally:
        for s in held:
            s.close()
        close()
