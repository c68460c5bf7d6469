"""The local API for browser-based business systems, over raw HTTP: CORS headers and
statuses, ?wait= long polls, the event stream (ids, resume, keep-alive, the stream
limit, a reader that never reads), /pingjia.js and HTTPS (contract: apis.md §1a)."""
from __future__ import annotations

import json
import logging
import socket
import ssl
import threading
import time

import pytest
import requests

from config.errors import ConfigError
from config.settings import loads
from terminal import flow
from tests.terminal.conftest import TOKEN, start_terminal
from tests.terminal.test_api import item, wait_state
from tests.terminal.tlskit import make_pki

PAGE = "https://ywxt.example.gov.cn"
OTHER = "https://evil.example.com"
STAFF = {"id": "0131", "name": "王芳"}


@pytest.fixture
def browser_api(tmp_path):
    run, close = start_terminal(tmp_path, api_values={"allow_origins": [PAGE, "http://10.1.2.3:8080"],
                                                      "max_streams": 2},
                                keepalive_s=0.3)
    try:
        yield run
    finally:
        close()


def cors_headers(r) -> dict:
    return {k: v for k, v in r.headers.items() if k.lower().startswith("access-control-")}


# --- CORS ------------------------------------------------------------------------------

def test_an_allowed_origins_preflight_gets_204_without_a_token(browser_api):
    r = requests.options(browser_api.url + "/v1/invitations", timeout=5, headers={
        "Origin": PAGE, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert r.status_code == 204 and r.content == b""
    assert cors_headers(r) == {
        "Access-Control-Allow-Origin": PAGE, "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE",
        "Access-Control-Allow-Headers": "Authorization, Content-Type", "Access-Control-Max-Age": "600"}
    assert r.headers["Vary"] == "Origin"
    # Chrome's private-network check asks for one more header
    r = requests.options(browser_api.url + "/v1/events", timeout=5, headers={
        "Origin": PAGE, "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Private-Network": "true"})
    assert r.status_code == 204 and r.headers["Access-Control-Allow-Private-Network"] == "true"
    # an origin given with its default port is the same origin
    r = requests.options(browser_api.url + "/v1/status", timeout=5, headers={
        "Origin": "http://10.1.2.3:8080", "Access-Control-Request-Method": "GET"})
    assert r.status_code == 204 and r.headers["Access-Control-Allow-Origin"] == "http://10.1.2.3:8080"


def test_another_origin_gets_403_and_no_cors_header(browser_api):
    for origin in (OTHER, "null", PAGE + ":8443", PAGE.replace("https", "http")):
        r = requests.options(browser_api.url + "/v1/invitations", timeout=5, headers={
            "Origin": origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Private-Network": "true"})
        assert r.status_code == 403 and r.json()["error"] == "origin_not_allowed", origin
        assert cors_headers(r) == {} and "Vary" not in r.headers
    # an OPTIONS that is no browser's preflight is refused the same way
    r = requests.options(browser_api.url + "/v1/status", timeout=5)
    assert r.status_code == 403 and r.json()["error"] == "origin_not_allowed"
    assert browser_api.call("GET", "/v1/status").json()["open_visit"] is None


def test_every_answer_to_an_allowed_origin_carries_its_cors_headers(browser_api):
    answers = [
        browser_api.call("PUT", "/v1/staff", STAFF, headers={"Origin": PAGE}),
        browser_api.call("GET", "/v1/status", headers={"Origin": PAGE}),
        browser_api.call("GET", "/v1/invitations/nope", headers={"Origin": PAGE}),           # 404
        browser_api.call("POST", "/v1/invitations", {"items": []}, headers={"Origin": PAGE}),  # 400
        requests.get(browser_api.url + "/v1/status", headers={"Origin": PAGE}, timeout=5),  # 401
        browser_api.call("PATCH", "/v1/window", headers={"Origin": PAGE}),                   # 405
    ]
    assert [r.status_code for r in answers] == [200, 200, 404, 400, 401, 405]
    for r in answers:
        assert r.headers["Access-Control-Allow-Origin"] == PAGE and r.headers["Vary"] == "Origin"
    for origin in (OTHER, None):
        r = browser_api.call("GET", "/v1/status", headers={"Origin": origin} if origin else {})
        assert r.status_code == 200 and cors_headers(r) == {}


def test_no_origin_is_allowed_by_default(running):
    r = requests.options(running.url + "/v1/invitations", timeout=5, headers={
        "Origin": PAGE, "Access-Control-Request-Method": "POST"})
    assert r.status_code == 403 and cors_headers(r) == {}


@pytest.mark.parametrize("origin", ["*", "https://ywxt.example.gov.cn/", "https://a.cn/path",
                                    "ywxt.example.gov.cn", "ftp://a.cn", "https://A.cn",
                                    "https://a.cn:70000", "https://*.a.cn"])
def test_the_settings_check_refuses_a_malformed_origin(origin):
    with pytest.raises(ConfigError) as e:
        loads(f'[api]\nallow_origins = ["{origin}"]\n', "/etc/pingjia/pingjia.toml")
    assert str(e.value).startswith("/etc/pingjia/pingjia.toml:2: api.allow_origins:")


# --- long poll --------------------------------------------------------------------------

def open_visit(run, visit_id: str) -> None:
    r = run.call("POST", "/v1/invitations", {"visit_id": visit_id, "items": [item(1)], "staff": STAFF})
    assert r.status_code == 201, r.text


def test_wait_answers_as_soon_as_the_visit_is_rated(browser_api):
    open_visit(browser_api, "v-wait")
    threading.Timer(0.5, browser_api.press, args=(4,)).start()
    started = time.monotonic()
    r = browser_api.call("GET", "/v1/invitations/v-wait?wait=10")
    took = time.monotonic() - started
    assert r.status_code == 200 and r.json()["state"] == "rated" and r.json()["level"] == 4
    assert 0.45 < took < 1.5, took


def test_wait_answers_open_after_the_seconds_asked(browser_api):
    open_visit(browser_api, "v-open")
    started = time.monotonic()
    r = browser_api.call("GET", "/v1/invitations/v-open?wait=2")
    took = time.monotonic() - started
    assert r.json() == {"visit_id": "v-open", "state": "open"} and 1.95 < took < 3.0, took
    # an unknown visit is no reason to wait
    started = time.monotonic()
    assert browser_api.call("GET", "/v1/invitations/nope?wait=30").status_code == 404
    assert time.monotonic() - started < 1


@pytest.mark.parametrize("query", ["wait=0", "wait=61", "wait=abc", "wait=", "wait=1&wait=2",
                                   "wait=-1", "wait=1.5"])
def test_wait_takes_1_to_60_seconds(browser_api, query):
    open_visit(browser_api, "v-bad")
    r = browser_api.call("GET", f"/v1/invitations/v-bad?{query}")
    assert r.status_code == 400 and r.json()["field"] == "wait", query


# --- the event stream -----------------------------------------------------------------------

class Stream:
    """A raw reader of GET /v1/events."""

    def __init__(self, run, headers=(), query=None, rcvbuf=None):
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect(("127.0.0.1", run.api.port))
        self.sock.settimeout(5)
        path = "/v1/events" + (f"?{query}" if query else "")
        auth = () if query else (f"Authorization: Bearer {TOKEN}",)
        head = "\r\n".join([f"GET {path} HTTP/1.1", "Host: x", *auth, *headers]) + "\r\n\r\n"
        self.sock.sendall(head.encode())
        self.buf = b""
        self.status, self.head = self._head()

    def _head(self):
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                break
            self.buf += chunk
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        return int(head.split(b" ")[1]), head.decode("latin-1")

    def blocks(self, n: int, timeout: float = 5.0) -> list[str]:
        """The next `n` blocks (events or comments) of the stream."""
        end = time.monotonic() + timeout
        out = []
        while len(out) < n:
            while b"\n\n" not in self.buf:
                self.sock.settimeout(max(0.01, end - time.monotonic()))
                chunk = self.sock.recv(65536)
                assert chunk, f"the stream ended after {out}"
                self.buf += chunk
            block, _, self.buf = self.buf.partition(b"\n\n")
            out.append(block.decode("utf-8"))
        return out

    def events(self, n: int, timeout: float = 5.0) -> list[tuple[int, str, dict]]:
        out = []
        while len(out) < n:
            for block in self.blocks(1, timeout):
                fields = dict(line.split(": ", 1) for line in block.split("\n")
                              if not line.startswith(":") and ": " in line)
                if "event" in fields:
                    out.append((int(fields["id"]), fields["event"], json.loads(fields["data"])))
        return out

    def close(self):
        self.sock.close()


def test_the_stream_tells_each_change_with_increasing_ids(browser_api):
    s = Stream(browser_api)
    try:
        assert s.status == 200 and "Content-Type: text/event-stream" in s.head
        browser_api.call("PUT", "/v1/staff", STAFF)
        open_visit(browser_api, "v-sse")
        browser_api.press(5)
        wait_state(browser_api, "v-sse", "rated")
        browser_api.call("PUT", "/v1/window", {"state": "paused", "message": "午休"})
        got = s.events(4)
        ids = [i for i, _, _ in got]
        assert ids == sorted(ids) and len(set(ids)) == 4
        assert [(name, data) for _, name, data in got] == [
            ("staff", {"staff": STAFF}),
            ("invitation", {"visit_id": "v-sse", "state": "open"}),
            ("outcome", browser_api.call("GET", "/v1/invitations/v-sse").json()),
            ("window", {"state": "paused", "message": "午休"})]
        assert got[2][2]["state"] == "rated" and got[2][2]["level"] == 5
    finally:
        s.close()


def test_last_event_id_resumes_and_comments_keep_it_alive(browser_api):
    s = Stream(browser_api)
    browser_api.call("PUT", "/v1/staff", STAFF)
    browser_api.call("DELETE", "/v1/staff")
    first = s.events(2)
    s.close()
    browser_api.call("PUT", "/v1/window", {"state": "paused"})  # while the browser is away
    s = Stream(browser_api, headers=[f"Last-Event-ID: {first[0][0]}"])
    try:
        again = s.events(2)
        assert [e[0] for e in again] == [first[1][0], first[1][0] + 1]
        assert again[0][1:] == ("staff", {"staff": None})
        assert again[1][1:] == ("window", {"state": "paused"})
        # nothing happens: a comment every keepalive_s (0.3 s here)
        started = time.monotonic()
        blocks = s.blocks(2, timeout=2)
        assert all(b.startswith(": keep-alive") for b in blocks)
        assert time.monotonic() - started < 1.0
    finally:
        s.close()
    bad = Stream(browser_api, headers=["Last-Event-ID: x1"])
    assert bad.status == 400
    bad.close()


def test_the_token_may_come_in_the_query_and_no_query_is_logged(browser_api, caplog):
    caplog.set_level(logging.DEBUG)
    s = Stream(browser_api, query=f"access_token={TOKEN}")
    assert s.status == 200
    s.close()
    wrong = Stream(browser_api, query="access_token=wrong-token-0123456789")
    assert wrong.status == 401
    wrong.close()
    # only the stream takes it
    r = requests.get(f"{browser_api.url}/v1/status?access_token={TOKEN}", timeout=5)
    assert r.status_code == 401
    requests.get(f"{browser_api.url}/nowhere?access_token={TOKEN}", timeout=5)
    with socket.create_connection(("127.0.0.1", browser_api.api.port)) as raw:  # refused heads too
        raw.sendall(f"GET /v1/events?access_token={TOKEN} HTTP/1.1\r\nBad Header\r\n\r\n".encode())
        raw.recv(4096)
    time.sleep(0.3)
    text = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("pingjia"))
    assert "/v1/events" in text and TOKEN not in text and "wrong-token" not in text
    assert "access_token" not in text


def test_beyond_max_streams_a_new_stream_or_wait_gets_503(browser_api):
    a, b = Stream(browser_api), Stream(browser_api)
    try:
        c = Stream(browser_api)
        assert c.status == 503 and json.loads(c.buf or c.sock.recv(4096))["error"] == "too_many_streams"
        c.close()
        open_visit(browser_api, "v-full")
        r = browser_api.call("GET", "/v1/invitations/v-full?wait=5")
        assert r.status_code == 503 and r.json()["error"] == "too_many_streams"
        assert browser_api.call("GET", "/v1/status").status_code == 200  # calls go on
    finally:
        a.close()
    deadline = time.monotonic() + 3  # the closed stream's slot comes free within a second or so
    while True:
        d = Stream(browser_api)
        if d.status == 200 or time.monotonic() > deadline:
            break
        d.close()
        time.sleep(0.1)
    assert d.status == 200
    d.close()
    b.close()


def test_a_reader_that_never_reads_is_dropped_and_the_flow_goes_on(tmp_path):
    run, close = start_terminal(tmp_path, stream_buffer=8, keepalive_s=60)
    try:
        dead = Stream(run, rcvbuf=4096)   # reads its head, then never again
        live = Stream(run)
        hub = run.api.ops.hub
        run.call("PUT", "/v1/staff", STAFF)
        started = time.monotonic()
        n = 0
        while hub.counts()["dropped"] == 0:
            assert time.monotonic() - started < 60, "the dead reader was never dropped"
            r = run.call("PUT", "/v1/window", {"state": "paused", "message": "x" * 40 if n % 2 else "午休"})
            assert r.status_code == 200
            n += 1
        # the flow never waited for it: rating goes on, and the live reader got every event
        run.call("PUT", "/v1/window", {"state": "open"})
        open_visit(run, "v-after")
        run.press(3)
        assert wait_state(run, "v-after", "rated")["level"] == 3
        names = [e[1] for e in live.events(n + 4, timeout=10)]
        assert names[-2:] == ["invitation", "outcome"] and names.count("window") == n + 1
        assert hub.counts()["subscribers"] == 1
        dead.close()
        live.close()
    finally:
        close()


# --- /pingjia.js ----------------------------------------------------------------------------

def test_the_script_is_served_without_a_token_with_cache_headers(browser_api):
    r = requests.get(browser_api.url + "/pingjia.js", timeout=5)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/javascript")
    assert "Pingjia" in r.text and r.headers["Cache-Control"].startswith("public, max-age=")
    etag = r.headers["ETag"]
    again = requests.get(browser_api.url + "/pingjia.js", headers={"If-None-Match": etag}, timeout=5)
    assert again.status_code == 304 and again.content == b"" and again.headers["ETag"] == etag
    assert requests.post(browser_api.url + "/pingjia.js", timeout=5).status_code == 405


# --- HTTPS ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def test_with_a_certificate_the_api_speaks_https_only(tmp_path, pki):
    run, close = start_terminal(tmp_path, api_values={"tls_cert": str(pki.cert), "tls_key": str(pki.key)})
    try:
        assert run.url.startswith("https://")
        silent = socket.create_connection(("127.0.0.1", run.api.port))  # never says hello
        started = time.monotonic()
        r = requests.get(run.url + "/v1/status", headers=run.auth, verify=str(pki.ca), timeout=5)
        assert r.status_code == 200 and time.monotonic() - started < 1.5
        with pytest.raises(requests.exceptions.SSLError):  # a client that does not trust the hall CA
            requests.get(run.url + "/v1/status", headers=run.auth, timeout=5)
        with pytest.raises(requests.exceptions.ConnectionError):  # plain HTTP is not spoken
            requests.get(run.url.replace("https", "http") + "/v1/status", headers=run.auth, timeout=5)
        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old.load_verify_locations(pki.ca)
        old.maximum_version = ssl.TLSVersion.TLSv1_1
        with pytest.raises((ssl.SSLError, OSError)):
            with socket.create_connection(("127.0.0.1", run.api.port), timeout=5) as raw:
                old.wrap_socket(raw, server_hostname="127.0.0.1")
        silent.close()
    finally:
        close()


def test_the_settings_check_names_a_missing_or_bad_tls_file(tmp_path, pki):
    from config.check import check_text
    base = f'[api]\ntoken = "{TOKEN}"\n'
    cases = {f'tls_cert = "{pki.cert}"\n': "api.tls_key",
             f'tls_cert = "{pki.cert}"\ntls_key = "{tmp_path}/none.key"\n': "api.tls_key",
             f'tls_cert = "{pki.ca}"\ntls_key = "{pki.key}"\n': "api.tls_cert"}
    for extra, key in cases.items():
        with pytest.raises(ConfigError) as e:
            check_text(base + extra, "/etc/pingjia/pingjia.toml")
        assert e.value.problems[0].key == key, str(e.value)
        assert e.value.problems[0].line is not None
    check_text(base + f'tls_cert = "{pki.cert}"\ntls_key = "{pki.key}"\n', "pingjia.toml")


def test_the_slow_client_deadlines_do_not_cut_a_stream(tmp_path):
    run, close = start_terminal(tmp_path, client_timeout=1.0, head_deadline=0.5,
                                body_deadline=0.5, keepalive_s=0.3)
    try:
        s = Stream(run)
        started = time.monotonic()
        comments = s.blocks(10, timeout=6)   # 3 s of a quiet stream: longer than every deadline
        assert time.monotonic() - started > 2.5
        assert sum(b.startswith(": keep-alive") for b in comments) >= 9
        run.call("PUT", "/v1/staff", STAFF)
        assert s.events(1)[0][1] == "staff"
        s.close()
    finally:
        close()
