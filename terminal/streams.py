"""The local API's answers that are not one JSON object: the event stream (GET
/v1/events, Server-Sent Events from terminal/hub.py) and the device's browser client
(GET /pingjia.js, terminal/web/pingjia.js). A mixin of the API's request handler.

A stream holds its connection and a thread for as long as the browser keeps it: it is
admitted within `api.max_streams`, ends within a second of the server's stop or of the
reader closing, and a reader that stops reading is dropped once the hub's buffer for it
is full (the socket's own send buffer is kept small so that happens soon).
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import select
import socket
import sys
import time
from importlib import resources

from terminal.http import ApiFailure

log = logging.getLogger("pingjia.api")

KEEPALIVE_S = 15.0          # a comment on every event stream at least this often
STREAM_SNDBUF = 16384       # kernel buffer of a stream's socket: a reader that stops costs no more


def _script() -> tuple[bytes, str]:
    data = resources.files("terminal").joinpath("web/pingjia.js").read_bytes()
    return data, '"' + hashlib.sha256(data).hexdigest()[:20] + '"'


SCRIPT, SCRIPT_ETAG = _script()


class StreamAnswers:
    """For a JsonHandler whose `api` has `ops.hub`, `ops.enter_stream()`, `keepalive_s`
    and `stopping`."""

    def _script(self):
        headers = {"Cache-Control": "public, max-age=300", "ETag": SCRIPT_ETAG}
        if SCRIPT_ETAG in [t.strip() for t in self.headers.get("If-None-Match", "").split(",")]:
            self.send_bytes(304, b"", None, {k: v for k, v in headers.items()})
            return
        self.send_bytes(200, SCRIPT, "text/javascript; charset=utf-8", headers)

    def _events(self):
        raw = self.headers.get("Last-Event-ID")
        last = None
        if raw is not None:
            if not re.fullmatch(r"[0-9]{1,18}", raw.strip()):
                raise ApiFailure(400, "invalid_request", "Last-Event-ID must be the id of an "
                                 "event this device sent", field="Last-Event-ID")
            last = int(raw.strip())
        ops, hub = self.api.ops, self.api.ops.hub
        ops.enter_stream()
        sub = hub.subscribe(last)
        try:
            try:  # a reader that stops reading fills this, then the hub's buffer, and is dropped
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, STREAM_SNDBUF)
            except OSError:
                pass
            self.send_answer_head(200, "text/event-stream; charset=utf-8",
                       {"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
            self._pump(sub)
        except OSError:  # the reader went away, or stopped reading for the idle timeout
            self.close_connection = True
        finally:
            hub.unsubscribe(sub)
            hub.leave()

    def _pump(self, sub):
        hub = self.api.ops.hub
        self.wfile.write(b"retry: 2000\n: pingjia events\n\n")
        keepalive = self.api.keepalive_s
        next_comment = time.monotonic() + keepalive
        while not self.api.stopping.is_set():
            now = time.monotonic()
            batch = hub.take(sub, max(0.0, min(1.0, next_comment - now)))
            if sub.dropped:
                log.warning("%s: an event stream did not read its events; dropped",
                            self.client_address[0])
                break
            out = b"".join(_sse(e) for e in batch)
            if time.monotonic() >= next_comment:
                out += b": keep-alive\n\n"
                next_comment = time.monotonic() + keepalive
            if out:
                self.wfile.write(out)
            elif self._peer_closed():
                break

    def _peer_closed(self) -> bool:
        sock = self.connection
        try:
            if not select.select([sock], [], [], 0)[0]:
                return False
            sock.settimeout(0)
            try:
                return not sock.recv(4096)  # anything it sends on a stream is ignored
            finally:
                sock.settimeout(self.timeout)
        except BlockingIOError:
            return False
        except OSError as exc:
            # a TLS socket with nothing to read (ssl is loaded once the API serves HTTPS)
            ssl = sys.modules.get("ssl")
            return not (ssl is not None and isinstance(exc, ssl.SSLWantReadError))


def _sse(event) -> bytes:
    data = json.dumps(event.data, ensure_ascii=False)  # one line: JSON escapes line breaks
    return f"id: {event.id}\nevent: {event.name}\ndata: {data}\n\n".encode("utf-8")
