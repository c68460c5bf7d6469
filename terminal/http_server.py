"""The HTTP server under both JSON servers (the local API, terminal/api.py, and the
reference receiver, agent/receiver/server.py): stdlib `ThreadingHTTPServer` with a thread
per connection, caps on connections in all and from one address, HTTPS with the
handshake in the connection's thread (terminal/tls.py), and one way to start and stop:
`start(name)` serves on a background thread, `stop()` ends it. How a request is read and
answered is terminal/http.py.
"""
from __future__ import annotations

import logging
import selectors
import socket
import threading
from collections import Counter
from socketserver import TCPServer
from typing import Optional

from terminal import tls as tlsconn
from terminal.lean import http_server

log = logging.getLogger("pingjia.api")  # the name the servers' request lines have always had

MAX_CONNECTIONS = 64        # beyond this a new connection gets 503 at once
MAX_PER_ADDRESS = 32        # and beyond this many from one address: one host cannot fill the rest


class HttpServer(http_server().ThreadingHTTPServer):
    """Threads per connection, at most `max_connections` in all and `max_per_address`
    from one address; beyond either a connection gets 503 at once. It keeps its open
    connections, so that `stop(end_connections=True)` ends keep-alive clients too."""

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
        self._open: set = set()
        self._open_lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        super().__init__(address, handler)

    def start(self, name: str) -> None:
        """Serve on a background (daemon) thread called `name`."""
        self._thread = threading.Thread(target=self.serve_until_stopped, name=name, daemon=True)
        self._thread.start()

    def stop(self, *, end_connections: bool = False, timeout: float = 5.0) -> None:
        """Stop serving, wait for the serving thread, close the socket. With
        `end_connections` the open connections are shut down too: a stopped server then
        looks down to its clients instead of going on answering on old connections."""
        self.stop_serving()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
        if end_connections:
            with self._open_lock:
                open_now = list(self._open)
            for sock in open_now:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self.server_close()

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
        with self._open_lock:
            self._open.add(request)
        try:
            if self.tls is not None:
                request = tlsconn.handshake(self.tls, request)
                if request is None:
                    return
            super().process_request_thread(request, client_address)
        finally:
            with self._open_lock:
                self._open.discard(request)
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
