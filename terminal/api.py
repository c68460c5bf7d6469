"""The local API: the window business system or kiosk app drives the terminal over the LAN.

stdlib `ThreadingHTTPServer`; each request turns into a flow event (`Terminal.request`)
or a read of the flow's snapshot and the store. The contract is `terminal/openapi.json`
(terminal/contract.py holds it for the server). Browser-based business systems call it
directly: CORS for the allowed origins, long polls and an event stream of outcomes
(terminal/hub.py), optional HTTPS, and the device's own client, /pingjia.js.

Nothing a client sends may stop ratings: the flow runs on its own thread and only sees
well-formed events; every failure here becomes a JSON answer, and a slow or greedy
client is cut off by the shared plumbing (terminal/http.py: deadlines, connection caps).
"""
from __future__ import annotations

import hmac
import json
import logging
import re
import sqlite3
import threading
import time
import uuid
from typing import Callable, Optional
from urllib.parse import parse_qs

from config import check as settings_check
from config.errors import ConfigError, Problem
from terminal import events as flow_events
from terminal import flow
from terminal.contract import (RECORD_SCHEMA, SPEC, Check, bundled_spec,  # noqa: F401 (re-exported)
                               describe, load_spec, schema_problem, validator)
from terminal.cors import Cors
from terminal.flow import Business, Cancel, Invite, SetWindow, SignIn, SignOut, Staff
from terminal.http import BODY_DEADLINE_S, CLIENT_TIMEOUT_S, HEAD_DEADLINE_S, ApiFailure, JsonHandler
from terminal.http_server import MAX_CONNECTIONS, MAX_PER_ADDRESS, HttpServer
from terminal.routes import Routes
from terminal.hub import Hub
from terminal.streams import KEEPALIVE_S, StreamAnswers
from terminal.service import REPLY_TIMEOUT_S, FlowBusy
from terminal.store import Reader, StorageError
from terminal.technician import Refused, Technician

log = logging.getLogger("pingjia.api")

SAVING_GRACE_S = 2.0        # how long a read waits for a commit under way
MAX_WAIT_S = 60             # GET /v1/invitations/{visit_id}?wait=S: 1 <= S <= this


# --- the token -------------------------------------------------------------------------

def load_token(settings) -> str:
    """The bearer token from `token` or `token_file`, by the one settings check (config/
    check.py): the API never serves without one, nor with a guessable one."""
    token, warnings = settings_check.api_token(settings)
    for warning in warnings:
        log.warning("%s", warning)
    return token


# --- the operations ---------------------------------------------------------------------

class Operations:
    """What each call does, apart from HTTP: takes parsed input, returns (status, body)."""

    def __init__(self, terminal, db_path, status: Optional[Callable[[], dict]] = None,
                 reply_timeout: float = REPLY_TIMEOUT_S, technician: Optional[Technician] = None,
                 hub: Optional[Hub] = None):
        self.terminal = terminal
        self.hub = hub or Hub(max_open=8)
        self.db_path = db_path
        self.extra_status = status
        self.reply_timeout = reply_timeout
        self.technician = technician or Technician(terminal)

    def _reader(self) -> Reader:
        try:
            return Reader(self.db_path)
        except (StorageError, sqlite3.Error) as exc:
            raise ApiFailure(503, "storage_failed", f"cannot read the records: {exc}") from None

    def _ask(self, make_event):
        try:
            reply = self.terminal.request(make_event, self.reply_timeout)
        except FlowBusy:
            raise ApiFailure(503, "busy", "the terminal did not answer in time; retry",
                             headers={"Retry-After": "1"}) from None
        return reply.status, dict(reply.body)

    def invite(self, body: dict):
        items = tuple(Business(**_stripped(item)) for item in body["items"])
        seen = set()
        for item in items:
            if item.project_no in seen:
                raise ApiFailure(400, "invalid_request", f"project_no {item.project_no} appears "
                                 "twice in items; list each business once", field="items")
            seen.add(item.project_no)
        visit_id = body.get("visit_id") or str(uuid.uuid4())
        staff = Staff(**_stripped(body["staff"])) if "staff" in body else None
        follow_up = body.get("follow_up", False)
        return self._ask(lambda rid: Invite(visit_id, items, staff, rid, follow_up=follow_up))

    def visit(self, visit_id: str, wait_s: Optional[int] = None):
        """The visit's state; with `wait_s`, not before it is no longer open or that many
        seconds have passed (a long poll)."""
        if wait_s is None:
            return self._visit_now(visit_id)
        self.enter_stream()
        try:
            end = time.monotonic() + wait_s
            while True:
                seen = self.hub.last_id  # before the read: an outcome after it wakes the wait
                status, answer = self._visit_now(visit_id)
                left = end - time.monotonic()
                if answer["state"] != "open" or left <= 0:
                    return status, answer
                self.hub.wait_after(seen, left)
        finally:
            self.hub.leave()

    def enter_stream(self) -> None:
        if not self.hub.enter():
            raise ApiFailure(503, "too_many_streams", f"{self.hub.max_open} event streams and "
                             "long polls are open (api.max_streams); retry later",
                             headers={"Retry-After": "5"})

    def _visit_now(self, visit_id: str):
        deadline = time.monotonic() + SAVING_GRACE_S
        while True:
            # Snapshot before the store: a visit that leaves the screen is committed before
            # the flow goes on, except while the screen says Saving; then wait for it.
            state = self.terminal.snapshot()
            with self._reader() as reader:
                try:
                    records = reader.visit(visit_id)
                except (StorageError, sqlite3.Error) as exc:
                    raise ApiFailure(503, "storage_failed", f"cannot read the records: {exc}") from None
            if records:
                return 200, flow_events.outcome(visit_id, records[0], stored=True)
            current = flow.open_visit(state)
            if current is not None and current.visit_id == visit_id:
                return 200, {"visit_id": visit_id, "state": "open"}
            held = [d for d in state.pending if isinstance(d, dict) and d.get("visit_id") == visit_id]
            if held:
                return 200, flow_events.outcome(visit_id, held[0], stored=False)
            if not isinstance(state.screen, flow.Saving) or time.monotonic() > deadline:
                raise ApiFailure(404, "unknown_visit", f"no visit {visit_id} on this device")
            time.sleep(0.02)

    def cancel(self):
        return self._ask(lambda rid: Cancel(rid))

    def sign_in(self, body: dict):
        staff = Staff(**_stripped(body))
        return self._ask(lambda rid: SignIn(staff, rid))

    def sign_out(self):
        return self._ask(lambda rid: SignOut(rid))

    def set_window(self, body: dict):
        paused = body["state"] == "paused"
        message = body.get("message", "").strip()
        return self._ask(lambda rid: SetWindow(paused, message, rid))

    def status(self):
        state = self.terminal.snapshot()
        cfg = state.config
        now = self.terminal.clock.now()
        current = flow.open_visit(state)
        out = {
            "device_id": cfg.device_id, "window_no": cfg.window_no, "mode": cfg.mode,
            "state": screen_name(state), "paused": state.paused,
            "staff": {"id": state.staff.id, "name": state.staff.name} if state.staff else None,
            "open_visit": None if current is None else {
                "visit_id": current.visit_id, "project_nos": [b.project_no for b in current.items],
                "invited_at": current.invited_at, "rating": isinstance(state.screen, flow.Tagging)},
            "queue_depth": None, "records": None,
            "held_in_memory": len(state.pending),
            "clock": {"synced": bool(now.synced), "time": now.iso()},
            "stats": dict(self.terminal.stats),
            "health": dict(state.health),
        }
        if state.paused:
            out["pause_message"] = state.pause_message
        if state.storage_error:
            out["storage_error"] = state.storage_error
        try:
            with Reader(self.db_path) as reader:
                out["queue_depth"] = reader.pending_count()
                out["records"] = reader.count()
        except Exception as exc:  # status must answer most of all when storage is broken
            out["storage_error"] = out.get("storage_error") or f"cannot read the records: {exc}"
        if self.extra_status is not None:
            try:
                out.update(self.extra_status())
            except Exception:
                log.exception("status source failed")
        return 200, out


    # --- technician calls (docs/local-api.md, `pingjia config|test`) ---------------------

    def reload_config(self):
        try:
            return 200, self.technician.reload(self._ask_ok)
        except Refused as r:
            raise ApiFailure(r.status, r.code, r.message, **r.extra) from None

    def _ask_ok(self, make_event):
        status, body = self._ask(make_event)
        if status >= 400:
            raise ApiFailure(status, body.get("error", "internal"), body.get("message", ""))
        return body

    def start_test(self, body: dict):
        return self._ask(lambda rid: self.technician.start_event(body, rid))

    def test_progress(self):
        from terminal.flow.testing import progress
        answer = progress(self.terminal.snapshot(), self.terminal.clock.mono_ms())
        if not answer:
            raise ApiFailure(404, "no_test", "no test has run since the terminal started")
        return 200, answer

    def stop_test(self):
        return self._ask(lambda rid: flow.StopTest(rid))

    def reader_test(self):
        return 200, self.technician.reader_check()


def _stripped(obj: dict) -> dict:
    return {k: v.strip() if isinstance(v, str) else v for k, v in obj.items()}


def screen_name(state) -> str:
    if state.storage_error:
        return "storage_error"
    if isinstance(state.screen, flow.Idle) and state.paused:
        return "paused"
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(state.screen).__name__).lower()


# --- routing --------------------------------------------------------------------------

# (path template, method) -> handler(ops, body, params). The OpenAPI test holds this
# table and the document together.
ROUTES = {
    ("/v1/invitations", "POST"): lambda ops, body, p: ops.invite(body),
    ("/v1/invitations/current", "DELETE"): lambda ops, body, p: ops.cancel(),
    ("/v1/invitations/{visit_id}", "GET"): lambda ops, body, p: ops.visit(p["visit_id"], p.get("wait")),
    ("/v1/staff", "PUT"): lambda ops, body, p: ops.sign_in(body),
    ("/v1/staff", "DELETE"): lambda ops, body, p: ops.sign_out(),
    ("/v1/window", "PUT"): lambda ops, body, p: ops.set_window(body),
    ("/v1/status", "GET"): lambda ops, body, p: ops.status(),
    ("/v1/config/reload", "POST"): lambda ops, body, p: ops.reload_config(),
    ("/v1/test", "POST"): lambda ops, body, p: ops.start_test(body),
    ("/v1/test", "GET"): lambda ops, body, p: ops.test_progress(),
    ("/v1/test", "DELETE"): lambda ops, body, p: ops.stop_test(),
    ("/v1/test/reader", "GET"): lambda ops, body, p: ops.reader_test(),
}
# Answers that are not JSON, served by the handler itself; /pingjia.js needs no token.
STREAMS = {("/v1/events", "GET"): "_events", ("/pingjia.js", "GET"): "_script"}
PUBLIC = {"/pingjia.js"}
# Every API path takes a CORS preflight (answered before any token is asked for).
PREFLIGHTS = {(t, "OPTIONS") for t, _ in [*ROUTES, *STREAMS] if t.startswith("/v1/")}
# What the document has: paths, methods and body checks (ROUTES, STREAMS and PREFLIGHTS
# are exactly its operations; tests/terminal/test_api_openapi.py holds that).
DOCUMENT = Routes(SPEC)
_VISIT_ID = Check("VisitId")


def query_wait(query: dict) -> Optional[int]:
    """`?wait=S` of a visit read: None without it; 400 unless one whole number 1..60."""
    values = query.get("wait")
    if values is None:
        return None
    if len(values) != 1 or not re.fullmatch(r"[0-9]{1,3}", values[0]) \
            or not 1 <= int(values[0]) <= MAX_WAIT_S:
        raise ApiFailure(400, "invalid_request", f"wait must be a whole number of seconds "
                         f"from 1 to {MAX_WAIT_S}", field="wait")
    return int(values[0])



# --- HTTP -------------------------------------------------------------------------------

class _ApiHandler(StreamAnswers, JsonHandler):
    internal_message = "the terminal had an internal error with this request; ratings go on"
    api: "ApiServer"

    def serve(self):
        path, _, query = self.path.split("#", 1)[0].partition("?")
        query = parse_qs(query, keep_blank_values=True)
        template, params = DOCUMENT.match(path)
        if template is None or template not in PUBLIC:
            if template is not None and self.command == "OPTIONS":
                self.answer_preflight()  # not a browser's (no Origin): refused as not allowed
                return
            self._authorize(query if template == "/v1/events" else None)
        template, params = DOCUMENT.find(path, self.command)
        if "visit_id" in params:
            problem = _VISIT_ID.problem(params["visit_id"])
            if problem:
                raise ApiFailure(400, "invalid_request", f"visit_id {problem[1]}", field="visit_id")
            params["wait"] = query_wait(query)
        check = DOCUMENT.check(template, self.command)
        body = None
        if check is not None:
            body = self.read_json()
            problem = check.problem(body)
            if problem:
                where, why = problem
                raise ApiFailure(400, "invalid_request", f"{where or 'body'} {why}",
                                 field=where or "body")
        else:
            self.discard_body()
        if (template, self.command) in STREAMS:
            getattr(self, STREAMS[(template, self.command)])()
            return
        status, answer = ROUTES[(template, self.command)](self.api.ops, body, params)
        self.send_json(status, answer)

    def _authorize(self, query=None):
        given = self.headers.get("Authorization", "")
        scheme, _, token = given.strip().partition(" ")
        if not given and query and query.get("access_token"):
            # EventSource cannot send headers: the stream takes the token in its URL
            # (which is why no log line has a query string)
            scheme, token = "bearer", query["access_token"][0]
        expected = self.api.token.encode("utf-8")
        ok = scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode("latin-1", "replace"), expected)
        if not ok:
            challenge = 'Bearer realm="pingjia"' + (', error="invalid_token"' if given else "")
            raise ApiFailure(401, "unauthorized", "send Authorization: Bearer <token> with the "
                             "device's API token" if not given else "wrong token or scheme",
                             headers={"WWW-Authenticate": challenge})


class ApiServer:
    """The local API of one terminal. `start()` serves on a background thread."""

    def __init__(self, settings, terminal, db_path, token: str,
                 status: Optional[Callable[[], dict]] = None, bind=None, port=None, *,
                 client_timeout: float = CLIENT_TIMEOUT_S, max_connections: int = MAX_CONNECTIONS,
                 max_per_address: int = MAX_PER_ADDRESS, head_deadline: float = HEAD_DEADLINE_S,
                 body_deadline: float = BODY_DEADLINE_S, reply_timeout: float = REPLY_TIMEOUT_S,
                 technician: Optional[Technician] = None, settings_file: Optional[str] = None,
                 keepalive_s: float = KEEPALIVE_S, stream_buffer: Optional[int] = None):
        if not token:
            raise ConfigError([Problem("settings", None, "api.token",
                                       "the local API never serves without a token")])
        self.settings = settings
        self.token = token
        self.client_timeout = client_timeout
        if technician is None and settings_file:
            technician = Technician(terminal, settings_file_path=settings_file, db_path=db_path)
        self.keepalive_s = keepalive_s
        self.stopping = threading.Event()
        hub = Hub(settings.max_streams, **({"buffer": stream_buffer} if stream_buffer else {}))
        self.ops = Operations(terminal, db_path, status, reply_timeout, technician, hub)
        self._terminal = terminal
        terminal.watchers.append(self._publish)
        terminal.after_frame.append(hub.wake)
        handler = type("Handler", (_ApiHandler,), {
            "api": self, "head_deadline": head_deadline, "body_deadline": body_deadline,
            "cors": Cors(settings.allow_origins)})
        address = (settings.bind if bind is None else bind,
                   settings.port if port is None else port)
        self.tls = settings_check.api_tls(settings)
        self.scheme = "https" if self.tls is not None else "http"
        self._httpd = HttpServer(address, handler, max_connections, max_per_address, self.tls)
        self.port = self._httpd.server_address[1]
        self._stopping = self.stopping
        self._lock = threading.Lock()

    def start(self) -> None:
        self._httpd.start("pingjia-api")
        log.info("local API (%s) on %s port %d", self.scheme, self._httpd.server_address[0],
                 self.port)

    def _publish(self, before, after, drafts, stored) -> None:
        # On the flow's thread: the hub only appends to buffers, it never waits. The
        # readers are woken once the turn's frame is out (after_frame): woken now, a
        # stream's thread each would take the interpreter from the frame being drawn
        # (make bench: press to frame with 8 streams open).
        for name, data in flow_events.of_step(before, after, drafts, stored):
            self.ops.hub.publish(name, data, wake=False)

    def stop(self) -> None:
        with self._lock:
            if self._stopping.is_set():
                return
            self._stopping.set()
        for hooks, hook in ((self._terminal.watchers, self._publish),
                            (self._terminal.after_frame, self.ops.hub.wake)):
            if hook in hooks:
                hooks.remove(hook)
        self._httpd.stop()
