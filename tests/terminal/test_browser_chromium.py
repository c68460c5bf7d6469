"""A business system's page in real headless Chromium (Debian's chromium, driven by
playwright with that browser) invites through the device's /pingjia.js from another
origin; a key press on the terminal rates; the page gets the outcome from the event
stream and from long polls; a page on an origin not allowed reaches nothing; the same
over HTTPS with a test hall CA."""
from __future__ import annotations

import http.server
import shutil
import ssl
import threading
import time

import pytest
from playwright.sync_api import sync_playwright  # a test extra (setup.py)

from tests.terminal.conftest import TOKEN, start_terminal
from tests.terminal.tlskit import make_pki

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

PAGE = """<!doctype html><meta charset="utf-8"><title>窗口业务系统</title>
<script src="{device}/pingjia.js"></script>"""


class PageServer:
    """A tiny web server on another port: the business system's origin. Its page loads
    /pingjia.js from `device` (set once the device runs)."""

    def __init__(self, context: ssl.SSLContext | None = None):
        server = self
        self.device = ""

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = PAGE.format(device=server.device).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if context is not None:
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        scheme = "https" if context else "http"
        self.origin = f"{scheme}://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def chromium():
    with sync_playwright() as p:
        yield p


def launch(p, *args):
    return p.chromium.launch(executable_path=CHROMIUM, headless=True,
                             args=["--no-sandbox", *args])


INVITE = """async ([token, visitId, events]) => {
  window.device = Pingjia.connect({token: token, events: events});
  window.outcome = null;
  window.failure = null;
  window.device.invite([{project_no: "SX-" + visitId, task_name: "户籍迁入"}],
                       {id: "0131", name: "王芳"}, {visitId: visitId})
    .then(o => { window.outcome = o; window.outcomeAt = Date.now(); })
    .catch(e => { window.failure = {code: e.code, status: e.status, name: e.name}; });
  return true;
}"""


def wait_open(run, visit_id: str, timeout: float = 10) -> None:
    run.wait_for(lambda: (run.call("GET", "/v1/status").json().get("open_visit") or {})
                 .get("visit_id") == visit_id, timeout, f"visit {visit_id} open")


def rate_through_the_page(run, page, visit_id: str, events: bool, level: int) -> float:
    """Invite from the page, press `level`; ms from the press to the page's outcome."""
    page.evaluate(INVITE, [TOKEN, visit_id, events])
    wait_open(run, visit_id)
    pressed = time.time() * 1000
    run.press(level)
    page.wait_for_function("window.outcome !== null || window.failure !== null", timeout=10_000)
    assert page.evaluate("window.failure") is None
    outcome = page.evaluate("window.outcome")
    assert outcome["visit_id"] == visit_id and outcome["state"] == "rated" and outcome["level"] == level
    return page.evaluate("window.outcomeAt") - pressed


def test_a_page_on_an_allowed_origin_invites_and_gets_the_outcome(tmp_path, chromium):
    site, other = PageServer(), PageServer()
    run, close = start_terminal(tmp_path, api_values={"allow_origins": [site.origin]})
    site.device = other.device = run.url
    browser = launch(chromium)
    try:
        run.call("PUT", "/v1/staff", {"id": "0131", "name": "王芳"})
        page = browser.new_page()
        page.goto(site.origin + "/")
        # the event stream
        ms = rate_through_the_page(run, page, "web-sse-1", events=True, level=5)
        assert ms < 1000, ms
        assert run.api.ops.hub.counts()["subscribers"] == 1
        # long polls
        page2 = browser.new_page()
        page2.goto(site.origin + "/")
        ms = rate_through_the_page(run, page2, "web-poll-1", events=False, level=4)
        assert ms < 1000, ms
        # a page on another origin: the preflight is refused, nothing reaches the device
        before = len(run.records())
        evil = browser.new_page()
        evil.goto(other.origin + "/")
        evil.evaluate(INVITE, [TOKEN, "web-evil", True])
        evil.wait_for_function("window.failure !== null", timeout=10_000)
        assert evil.evaluate("window.failure")["code"] == "unreachable"
        assert run.call("GET", "/v1/status").json()["open_visit"] is None
        assert run.call("GET", "/v1/invitations/web-evil").status_code == 404
        assert len(run.records()) == before
    finally:
        browser.close()
        close()
        site.close()
        other.close()


def test_the_same_over_https_with_a_hall_ca(tmp_path, chromium):
    pki = make_pki(tmp_path / "pki")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.cert, pki.key)
    site = PageServer(context)   # the business system is served over HTTPS too
    run, close = start_terminal(tmp_path, api_values={
        "tls_cert": str(pki.cert), "tls_key": str(pki.key), "allow_origins": [site.origin]})
    site.device = run.url
    browser = launch(chromium, f"--ignore-certificate-errors-spki-list={pki.spki}")
    try:
        assert run.url.startswith("https://") and site.origin.startswith("https://")
        run.call("PUT", "/v1/staff", {"id": "0131", "name": "王芳"}, verify=str(pki.ca))
        page = browser.new_page()
        page.goto(site.origin + "/")
        page.evaluate(INVITE, [TOKEN, "web-tls-1", True])
        run.wait_for(lambda: (run.call("GET", "/v1/status", verify=str(pki.ca)).json()
                              .get("open_visit") or {}).get("visit_id") == "web-tls-1", 10, "open")
        pressed = time.time() * 1000
        run.press(3)
        page.wait_for_function("window.outcome !== null || window.failure !== null", timeout=10_000)
        assert page.evaluate("window.failure") is None
        assert page.evaluate("window.outcome")["level"] == 3
        assert page.evaluate("window.outcomeAt") - pressed < 1000
        assert run.api.ops.hub.counts()["subscribers"] == 1   # by the event stream
    finally:
        browser.close()
        close()
        site.close()
