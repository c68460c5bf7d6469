"""HTTPS for the JSON servers: the TLS handshake of one connection, in its own thread.

The accept loop only accepts; the handshake runs in the connection's thread against a
deadline (not a per-read timeout, which every trickled byte would renew), so a client
that opens TCP and never says hello holds one connection slot for that long, never the
loop. The context itself comes from the settings check (config/check.py `api_tls`).
"""
from __future__ import annotations

import logging
import selectors
import socket
import time
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:  # ssl itself is loaded by the context's maker (config/check.py api_tls)
    import ssl

log = logging.getLogger("pingjia.api")

HANDSHAKE_DEADLINE_S = 5.0


def handshake(context: ssl.SSLContext, sock: socket.socket,
              deadline_s: float = HANDSHAKE_DEADLINE_S) -> Optional[ssl.SSLSocket]:
    """The connection wrapped in TLS, or None (closed) when the handshake failed or took
    longer than `deadline_s`."""
    from ssl import SSLWantReadError, SSLWantWriteError

    host = _peer(sock)
    timeout = sock.gettimeout()
    try:
        tls = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
    except (OSError, ValueError):
        sock.close()
        return None
    end = time.monotonic() + deadline_s
    tls.setblocking(False)
    try:
        with selectors.DefaultSelector() as sel:
            while True:
                try:
                    tls.do_handshake()
                    break
                except SSLWantReadError:
                    want = selectors.EVENT_READ
                except SSLWantWriteError:
                    want = selectors.EVENT_WRITE
                left = end - time.monotonic()
                if left <= 0:
                    log.info("%s: no TLS handshake within %.0f s; dropped", host, deadline_s)
                    tls.close()
                    return None
                sel.register(tls, want)
                sel.select(left)
                sel.unregister(tls)
    except (OSError, ValueError) as exc:  # not TLS (plain HTTP to an HTTPS port), bad version
        log.info("%s: TLS handshake failed: %s", host, getattr(exc, "reason", None) or exc)
        tls.close()
        return None
    tls.settimeout(timeout)
    return tls


def _peer(sock) -> str:
    try:
        return sock.getpeername()[0]
    except (OSError, IndexError):
        return "?"
