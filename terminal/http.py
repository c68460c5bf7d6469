"""JSON-over-HTTP request handling shared by the local API (terminal/api.py) and the
reference receiver (agent/receiver/handler.py): JSON errors, body and header limits, the
one text check for every body, slow-client deadlines. What each server serves lives with
it; this is how both read and answer. The server (threads, connection caps, start and
stop) is terminal/http_server.py, the routing from an OpenAPI document terminal/routes.py.

A client cannot hold a server: a request's head and body each have a deadline, so
trickling one byte at a time does not keep a connection (a socket timeout alone would be
reset by every byte).

A server's handler subclasses `JsonHandler` and builds on its public hooks only:
`serve()` answers one request (the subclass routes there), `text_problem()` says which
strings a body may not hold, and it reads and answers with `read_json()`,
`discard_body()`, `send_json()`, `send_bytes()` and `send_answer_head()`; the body's
bytes as they came are `body_bytes` (what a signature covers).

For browsers (the local API sets them): CORS headers for the allowed origins and their
preflights (terminal/cors.py), and answers without a length that end with the connection
(streams).
No log line has a query string: it may hold a token.
"""
from __future__ import annotations

import io
import json
import logging
import re
import socket
import time
from http import HTTPStatus
from typing import Optional

from config.text import first_text_problem
from terminal.cors import Cors, is_preflight
from terminal.lean import http_server

log = logging.getLogger("pingjia.api")  # the name the servers' request lines have always had

CLIENT_TIMEOUT_S = 10.0     # a client that sends nothing for this long is dropped
HEAD_DEADLINE_S = 5.0       # request line and headers, from their first byte
BODY_DEADLINE_S = 10.0      # the body, from the end of the head


class ApiFailure(Exception):
    """An answer that is an error: raised anywhere in a handler, sent as JSON."""

    def __init__(self, status: int, code: str, message: str, headers=None, **extra):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}
        self.extra = extra

    def body(self) -> dict:
        return {"error": self.code, "message": self.message, **self.extra}


class JsonHandler(http_server().BaseHTTPRequestHandler):
    """JSON over HTTP/1.1 with the limits of both servers; a subclass answers in `serve`
    and sets `api` (an object with `client_timeout` and `settings.max_body_bytes`)."""

    protocol_version = "HTTP/1.1"
    server_version = "pingjia"
    sys_version = ""
    # TCP_NODELAY: headers and body go out in two writes; with Nagle the body waits for
    # the client's delayed ACK, 40 ms on every keep-alive answer.
    disable_nagle_algorithm = True
    api: object  # set on the subclass each server makes
    cors: Optional[Cors] = None  # browsers' origins allowed (the local API sets it)
    head_deadline = HEAD_DEADLINE_S
    body_deadline = BODY_DEADLINE_S
    internal_message = "the server had an internal error with this request"
    body_bytes = b""  # the request body as it came, once read_json has read it

    def setup(self):
        self.timeout = self.api.client_timeout
        super().setup()
        self._in = _DeadlineReader(self.connection, self.timeout)
        self.rfile = io.BufferedReader(self._in)

    def handle_one_request(self):
        # Waiting for a request (a fresh or kept-alive connection) is bounded by the idle
        # timeout; from its first byte on, the head has its own deadline.
        self._in.deadline = None
        try:
            if not self.rfile.peek(1):
                self.close_connection = True
                return
        except (OSError, ValueError):
            self.close_connection = True
            return
        self._in.deadline = time.monotonic() + self.head_deadline
        super().handle_one_request()
        if self._in.expired:
            log.info("%s: the request head did not arrive within %.0f s; dropped",
                     self.client_address[0], self.head_deadline)

    # Any method name reaches _dispatch, so an undocumented one gets 405, not 501.
    def __getattr__(self, name):
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    def handle_expect_100(self):
        # Say "100 Continue" only once auth, length and type are checked (see _read_exactly).
        return True

    def _dispatch(self):
        started = time.monotonic()
        self._status = 0
        self._in.stop_deadline()
        self._body_pending = _declared_body(self.headers)
        self.body_bytes = b""
        try:
            try:
                content_length(self.headers)  # a body that cannot be framed: 400 at once
                if self.cors is not None and is_preflight(self.command, self.headers):
                    self.answer_preflight()
                else:
                    self.serve()
            except ApiFailure as f:
                self.send_json(f.status, f.body(), f.headers)
            except Exception:
                log.exception("unexpected error on %s %s", self.command, self.log_path())
                self.send_json(500, {"error": "internal", "message": self.internal_message})
        except (OSError, ValueError):  # the client went away while we answered
            self.close_connection = True
        finally:
            log.info("%s %s %s %d %.0fms", self.client_address[0], loggable(self.command),
                     self.log_path(), self._status, (time.monotonic() - started) * 1000)

    def log_path(self) -> str:
        """The path for a log line: never its query (`?access_token=` is a secret)."""
        return loggable(self.path.split("?", 1)[0])

    def serve(self) -> None:
        """The hook each server fills in: answer this request (route it, read its body
        with `read_json` or skip it with `discard_body`, answer with `send_json`). An
        ApiFailure raised here is sent as its JSON error, any other exception as a 500
        with `internal_message`; a client that went away ends the connection."""
        raise NotImplementedError

    def answer_preflight(self) -> None:
        """A CORS preflight's answer: 204 with the allowed origin's headers, else 403."""
        self.discard_body()
        headers = self.cors.preflight(self.headers)
        if headers is None:
            raise ApiFailure(403, "origin_not_allowed", "this page's origin is not in the "
                             "device's api.allow_origins")
        self.send_bytes(204, b"", None, headers)

    def read_json(self):
        """The request's JSON body, after its length, type, syntax and text are checked
        (411, 413, 415, 400 as ApiFailures); its bytes are kept in `body_bytes`."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower() \
                or self.headers.get("Content-Length") is None:
            raise ApiFailure(411, "length_required", "send the body with a Content-Length")
        length = content_length(self.headers)
        limit = self.api.settings.max_body_bytes
        if length > limit:
            raise ApiFailure(413, "body_too_large", f"the body is {length} bytes; the limit is {limit}")
        ctype = self.headers.get("Content-Type", "")
        media, _, params = ctype.partition(";")
        charset = params.strip().lower().replace(" ", "")
        if media.strip().lower() != "application/json" or charset not in ("", "charset=utf-8"):
            raise ApiFailure(415, "unsupported_media_type",
                             f"send Content-Type: application/json (got {loggable(ctype) or 'none'})")
        raw = self.body_bytes = self._read_exactly(length)
        try:
            body = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates,
                              parse_constant=_no_constants)
        except (ValueError, RecursionError) as exc:
            raise ApiFailure(400, "invalid_json", f"the body is not valid JSON: {_short(exc)}") from None
        bad_text = self.text_problem(body)
        if bad_text:
            # JSON lets "\udfff" through, and no record, log line or database row can
            # hold it: refused here, for every body of both servers, before any field
            # reaches the flow or a store.
            where = loggable(bad_text[0]) or "body"  # the bad text may be in a key
            raise ApiFailure(400, "invalid_text", f"{where}: {bad_text[1]}", field=where)
        return body

    def text_problem(self, body):
        """The hook for which text a body may hold: (field, why) of the first string in
        the body no record or store can hold, None when all can. A server whose bodies
        are judged in parts (the receiver's records one by one) narrows it."""
        return first_text_problem(body)

    def _read_exactly(self, length: int) -> bytes:
        if self.headers.get("Expect", "").lower() == "100-continue" \
                and self.request_version >= "HTTP/1.1":
            self.send_response_only(HTTPStatus.CONTINUE)
            self.end_headers()
        self._in.deadline = time.monotonic() + self.body_deadline
        chunks, got = [], 0
        try:
            while got < length:
                chunk = self.rfile.read1(min(65536, length - got))
                if not chunk:
                    raise ApiFailure(400, "invalid_request", "the body ended before Content-Length")
                chunks.append(chunk)
                got += len(chunk)
        except (TimeoutError, socket.timeout):
            raise ApiFailure(408, "timeout", "the body did not arrive in time") from None
        finally:
            self._in.stop_deadline()
        self._body_pending = False
        return b"".join(chunks)

    def discard_body(self) -> None:
        """A body on a call that takes none is ignored, if it is small enough to skip."""
        if not self._body_pending:
            return
        length = content_length(self.headers)
        if length is None:
            return  # unknown length: the connection closes after the answer
        if length <= self.api.settings.max_body_bytes:
            self._read_exactly(length)

    def send_json(self, status: int, body, headers=None):
        """A JSON answer, never cached; a 304 has neither body nor type (RFC 9110 §15.4.5)."""
        if status == 304:
            self.send_bytes(304, b"", None, {"Cache-Control": "no-store", **(headers or {})})
            return
        try:
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:  # an answer that echoes a lone surrogate: escape it
            data = json.dumps(body).encode("ascii")
        self.send_bytes(status, data, "application/json; charset=utf-8",
                        {"Cache-Control": "no-store", **(headers or {})})

    def send_bytes(self, status: int, data: bytes, content_type: Optional[str], headers=None):
        """An answer of `data` with its length (204 and 304 have no body, and so none)."""
        length = {} if status in (204, 304) else {"Content-Length": str(len(data))}
        self.send_answer_head(status, content_type, {**length, **(headers or {})})
        if self.command != "HEAD" and data and status not in (204, 304):
            self.wfile.write(data)
        self.wfile.flush()

    def send_answer_head(self, status: int, content_type: Optional[str], headers: dict):
        """The status line and headers; an answer to an allowed origin gets its CORS ones.
        An answer without Content-Length (a stream) ends with the connection."""
        self._status = status
        if self._body_pending or ("Content-Length" not in headers and status not in (204, 304)):
            # Unread bytes would be taken for the next request: end this connection.
            self.close_connection = True
        self.send_response_only(status)
        self.send_header("Date", self.date_time_string())
        if content_type:
            self.send_header("Content-Type", content_type)
        asked = getattr(self, "headers", None)  # None: the head itself was refused
        cors = self.cors.headers(asked.get("Origin")) if self.cors and asked else {}
        for name, value in {**headers, **cors}.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()

    def send_error(self, code, message=None, explain=None):
        # http.server's own refusals (bad request line, headers too long): JSON too.
        self.close_connection = True
        self._body_pending = True
        self.command = self.command or ""
        if self.request_version in ("", "HTTP/0.9"):
            self.request_version = "HTTP/1.0"  # nobody speaks 0.9 now: answer with a status line
        try:
            self.send_json(int(code), {"error": re.sub(r"\W+", "_", HTTPStatus(code).phrase.lower()),
                                   "message": message or HTTPStatus(code).phrase})
        except OSError:
            pass
        log.info("%s %s - %d", self.client_address[0],
                 loggable(self.requestline.split("?", 1)[0]), int(code))

    def log_message(self, fmt, *args):
        log.debug("http: " + fmt, *args)


def _declared_body(headers) -> bool:
    if headers is None:
        return False
    if "chunked" in headers.get("Transfer-Encoding", "").lower():
        return True
    return any(v.strip() != "0" for v in headers.get_all("Content-Length") or ())


_DIGITS = re.compile(r"[0-9]{1,18}")


def content_length(headers) -> Optional[int]:
    """The declared body length, None when there is none. Anything but one run of digits
    (a sign, a second header, "1_0", spaces inside) is refused: two parties reading a
    length differently is how requests get smuggled past one of them."""
    values = headers.get_all("Content-Length") if headers is not None else None
    if not values:
        return None
    if len(values) > 1:
        raise ApiFailure(400, "invalid_request", "Content-Length appears more than once")
    if not _DIGITS.fullmatch(values[0].strip(" \t")):
        raise ApiFailure(400, "invalid_request", "Content-Length must be digits only")
    return int(values[0])


class _DeadlineReader(io.RawIOBase):
    """The connection's input, read against a deadline when one is set: every recv waits
    at most the idle timeout and never past the deadline."""

    def __init__(self, sock, idle_timeout: float):
        self.sock, self.idle = sock, idle_timeout
        self.deadline: Optional[float] = None
        self.expired = False

    def readable(self) -> bool:
        return True

    def stop_deadline(self) -> None:
        self.deadline = None
        self.sock.settimeout(self.idle)  # also what writes of the answer wait for

    def readinto(self, buffer) -> int:
        if self.deadline is None:
            self.sock.settimeout(self.idle)
        else:
            left = self.deadline - time.monotonic()
            if left <= 0:
                self.expired = True
                raise TimeoutError("deadline passed")
            self.sock.settimeout(min(left, self.idle))
        return self.sock.recv_into(buffer)


def _no_duplicates(pairs):
    out = dict(pairs)  # at C speed: the receiver parses 500-record batches with this
    if len(out) != len(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"key {key!r} appears twice")
            seen.add(key)
    return out


def _no_constants(name):
    raise ValueError(f"{name} is not JSON")


def _short(exc) -> str:
    return str(exc)[:160] if not isinstance(exc, RecursionError) else "nested too deeply"


def loggable(text: str) -> str:
    """A request path, header or field name as it may go into a log line or a database
    row: printable, short, encodable."""
    text = text[:200]
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)
