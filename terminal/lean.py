"""What a service keeps out of its memory: OpenSSL unless it needs it, and charset guessing.

Every module a long-running process imports stays resident for its life, and some cost
far more than their use (make bench: the terminal's and the agent's RSS):

- OpenSSL 3: `_hashlib` (under hashlib and hmac) maps and initialises libcrypto, 3.4 MiB
  resident, and `ssl` adds its TLS half, 1.1 MiB more. The terminal needs neither for a
  sha256 device that serves plain HTTP: CPython's built-in SHA-256 (`_sha256`) computes
  the same digests, and the standard library's pure-Python HMAC the same MACs
  (tests/ops/test_lean.py checks them against OpenSSL's). A device with
  `device.hash_alg = "sm3"` needs OpenSSL (only it has SM3); TLS (`api.tls_cert`) and an
  HTTPS client load `ssl` when they start, and `import ssl` works as ever.
- charset_normalizer, 2.4 MiB: requests uses it only to guess the encoding of a text
  answer that names none. The device's clients read JSON, which is UTF-8 (RFC 8259) and
  which they decode themselves, and requests without it falls back to UTF-8.

`http_server()`: the standard library's http.server, imported with ssl hidden from
http.client beneath it (for an HTTPS client the servers never use). In such a process
http.client has no HTTPSConnection; the project's clients use requests, which brings its
own.

`hash_without_openssl(alg)`: from now on hashlib and hmac use CPython's own hashes, if
`alg` allows it and neither is imported yet. The terminal and the agent call it once
their settings are read, before they import what hashes (terminal/serve.py,
agent/service.py).

`requests_module()`: the requests module, imported (if it is not yet) without charset
guessing.
"""
from __future__ import annotations

import sys
import warnings

BUILTIN_ALGS = ("sha256",)  # what CPython hashes without OpenSSL, of terminal/records.py HASH_ALGS


def http_server():
    """The module http.server, with ssl kept out of its import where it is not loaded yet."""
    if "ssl" in sys.modules or "http.client" in sys.modules:
        import http.server
        return http.server
    sys.modules["ssl"] = None  # `import ssl` raises ImportError, which http.client allows
    try:
        import http.server
    finally:
        if "ssl" in sys.modules and sys.modules["ssl"] is None:
            del sys.modules["ssl"]
    return http.server


def hash_without_openssl(alg: str) -> bool:
    """Keep OpenSSL's hashes (`_hashlib`) out of this process for good when `alg` is one
    CPython computes itself. True when they are out; False when OpenSSL is needed for
    `alg` or is loaded already (nothing changes then)."""
    if alg not in BUILTIN_ALGS:
        return False
    if "_hashlib" in sys.modules:
        return sys.modules["_hashlib"] is None
    if "hashlib" in sys.modules or "hmac" in sys.modules:
        return False
    sys.modules["_hashlib"] = None  # hashlib and hmac fall back to their built-in code
    return True


def requests_module():
    """The module requests, imported without a charset guesser where it is not loaded yet."""
    if "requests" not in sys.modules:
        hidden = [name for name in ("charset_normalizer", "chardet") if name not in sys.modules]
        for name in hidden:
            sys.modules[name] = None
        try:
            with warnings.catch_warnings():  # requests says it found no guesser: on purpose
                warnings.filterwarnings("ignore", "Unable to find acceptable character detection")
                import requests
        finally:
            for name in hidden:
                if sys.modules.get(name, 0) is None:
                    del sys.modules[name]
    import requests
    return requests
