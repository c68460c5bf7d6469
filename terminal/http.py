"""JSON-over-HTTP plumbing shared by the local API (terminal/api.py) and the reference
receiver (agent/receiver/server.py): stdlib `ThreadingHTTPServer`, JSON errors, body and
header limits, the one text check for every body, slow-client deadlines and connection
caps. What each server serves lives with it; this is how both read and answer.

A client cannot hold a server: the connections in all and from one address are capped,
and a request's head and body each have a deadline, so trickling one byte at a time does
not keep a connection (a socket timeout alone would be reset by every byte).

For browsers (the local API sets them): CORS headers for the allowed origins and their
preflights (terminal/cors.py), HTTPS with the handshake in the connection's thread
(terminal/tls.py), and answers without a length that end with the connection (streams).
No log line has a query string: it may hold a token.
"""
from __future__ import annotations

import io
import json
import logging
import re
import selectors
import socket
import threading
import time
from collections import Counter
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from typing import Optional
from urllib.parse import unquote

from config.text import first_text_problem
from terminal import tls as tlsconn
from terminal.cors import Cors, is_preflight

log = logging.getLogger("pingjia.api")  # the name the servers' request lines have always had

CLIENT_TIMEOUT_S = 10.0     # a client that sends nothing for this long is dropped
HEAD_DEADLINE_S = 5.0       # request line and headers, from their first byte
BODY_DEADLINE_S = 10.0      # the body, from the end of the head
MAX_CONNECTIONS = 64        # beyond this a new connection gets 503 at once
MAX_PER_ADDRESS = 32        # and beyond this many from one address: one host cannot fill the rest


class ApiFailure(Exception):
    """An answer that is an error: raised anywhere in a handler, sent as JSON."""

    def __init__(self, status: int, code: str, message: str, headers=None, **extra):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}
        self.extra = extra

    def body(self) -> dict:
        return {"error": self.code, "message": self.message, **self.extra}


def path_pattern(template: str):
    """The regular expression of an OpenAPI path template ({name} is one segment)."""
    return re.compile(re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template)))


def match(path: str, patterns):
    """(template, params) for a request path among (template, pattern) pairs, or (None, {})."""
    for template, rx in patterns:
        m = rx.fullmatch(path)
        if m:
            return template, {k: unquote(v) for k, v in m.groupdict().items()}
    return None, {}


class JsonHandler(BaseHTTPRequestHandler):
    """JSON over HTTP/1.1 with the limits of both servers; a subclass routes in `_serve`
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
        try:
            try:
                content_length(self.headers)  # a body that cannot be framed: 400 at once
                if self.cors is not None and is_preflight(self.command, self.headers):
                    self._preflight()
                else:
                    self._serve()
            except ApiFailure as f:
                self._send(f.status, f.body(), f.headers)
            except Exception:
                log.exception("unexpected error on %s %s", self.command, self.log_path())
                self._send(500, {"error": "internal", "message": self.internal_message})
        except (OSError, ValueError):  # the client went away while we answered
            self.close_connection = True
        finally:
            log.info("%s %s %s %d %.0fms", self.client_address[0], loggable(self.command),
                     self.log_path(), self._status, (time.monotonic() - started) * 1000)

    def log_path(self) -> str:
        """The path for a log line: never its query (`?access_token=` is a secret)."""
        return loggable(self.path.split("?", 1)[0])

    def _serve(self):
        raise NotImplementedError

    def _preflight(self):
        self._discard_body()
        headers = self.cors.preflight(self.headers)
        if headers is None:
            raise ApiFailure(403, "origin_not_allowed", "this page's origin is not in the "
                             "device's api.allow_origins")
        self._send_bytes(204, b"", None, headers)

    def _read_json(self):
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
        raw = self._read_exactly(length)
        try:
            body = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates,
                              parse_constant=_no_constants)
        except (ValueError, RecursionError) as exc:
            raise ApiFailure(400, "invalid_json", f"the body is not valid JSON: {_short(exc)}") from None
        bad_text = self._text_problem(body)
        if bad_text:
            # JSON lets "\udfff" through, and no record, log line or database row can
            # hold it: refused here, for every body of both servers, before any field
            # reaches the flow or a store.
            where = loggable(bad_text[0]) or "body"  # the bad text may be in a key
            raise ApiFailure(400, "invalid_text", f"{where}: {bad_text[1]}", field=where)
        return body

    def _text_problem(self, body):
        """(field, why) of the first string in the body no record or store can hold."""
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

    def _discard_body(self):
        """A body on a call that takes none is ignored, if it is small enough to skip."""
        if not self._body_pending:
            return
        length = content_length(self.headers)
        if length is None:
            return  # unknown length: the connection closes after the answer
        if length <= self.api.settings.max_body_bytes:
            self._read_exactly(length)

    def _send(self, status: int, body: dict, headers=None):
        try:
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:  # an answer that echoes a lone surrogate: escape it
            data = json.dumps(body).encode("ascii")
        self._send_bytes(status, data, "application/json; charset=utf-8",
                         {"Cache-Control": "no-store", **(headers or {})})

    def _send_bytes(self, status: int, data: bytes, content_type: Optional[str], headers=None):
        # (204 and 304 have no body, and so no Content-Length)
        length = {} if status in (204, 304) else {"Content-Length": str(len(data))}
        self._head(status, content_type, {**length, **(headers or {})})
        if self.command != "HEAD" and data:
            self.wfile.write(data)
        self.wfile.flush()

    def _head(self, status: int, content_type: Optional[str], headers: dict):
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
            self._send(int(code), {"error": re.sub(r"\W+", "_", HTTPStatus(code).phrase.lower()),
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



class HttpServer(ThreadingHTTPServer):
    """Threads per connection, at most `max_connections` in all and `max_per_address`
    from one address; beyond either a connection gets 503 at once."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address, handler, max_connections: int,
                 max_per_address: Optional[int] = None, tls=None):
        self.tls = tls  # an ssl.SSLContext: HTTPS only, the handshake in each connection's thread
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self._slots = threading.BoundedSemaphore(max_connections)
        self._per_address = min(max_per_address or max_connections, max_connections)
        self._by_address: Counter = Counter()
        self._count_lock = threading.Lock()
        self._stop_asked = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        super().__init__(address, handler)

    def serve_until_stopped(self) -> None:
        """Like serve_forever, but `stop_serving` wakes the loop through a socket pair
        instead of the loop polling for it (serve_forever wakes every poll_interval, which
        is CPU spent while nothing happens)."""
        with selectors.DefaultSelector() as sel:
            sel.register(self, selectors.EVENT_READ)
            sel.register(self._wake_r, selectors.EVENT_READ)
            while not self._stop_asked.is_set():
                for key, _ in sel.select():
                    if key.fileobj is self and not self._stop_asked.is_set():
                        self.handle_request()

    def stop_serving(self) -> None:
        """Ends serve_until_stopped (its thread returns soon after; join it)."""
        self._stop_asked.set()
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    def server_close(self):
        super().server_close()
        self._wake_r.close()
        self._wake_w.close()

    def server_bind(self):
        # HTTPServer.server_bind looks the host name up in DNS, which can hang for long
        # on a device in a hall without a resolver.
        TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def process_request(self, request, client_address):
        host = client_address[0] if client_address else ""
        with self._count_lock:
            admitted = self._by_address[host] < self._per_address
            if admitted:
                self._by_address[host] += 1
        if not admitted or not self._slots.acquire(blocking=False):
            if admitted:
                self._leave(host)
            if self.tls is None:  # (a TLS client could not read a plain answer)
                _refuse(request)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except Exception:
            self._slots.release()
            self._leave(host)
            raise

    def process_request_thread(self, request, client_address):
        try:
            if self.tls is not None:
                request = tlsconn.handshake(self.tls, request)
                if request is None:
                    return
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()
            self._leave(client_address[0] if client_address else "")

    def _leave(self, host: str) -> None:
        with self._count_lock:
            self._by_address[host] -= 1
            if self._by_address[host] <= 0:
                del self._by_address[host]

    def handle_error(self, request, client_address):
        log.exception("connection from %s failed", client_address[0] if client_address else "?")


def _refuse(sock) -> None:
    body = b'{"error": "busy", "message": "too many connections; retry"}'
    try:
        sock.settimeout(1.0)
        sock.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                     b"Retry-After: 1\r\nConnection: close\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\n\r\n" + body)
    except OSError:
        pass
