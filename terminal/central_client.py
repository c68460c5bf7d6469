"""The central system's HTTP client: one keep-alive session, signed requests, timeouts, TLS.

Every answer is sorted into success or `Transient` (connection errors, timeouts, 5xx, 429,
a garbled body, and any other refusal of a whole request); the caller retries transient
faults with tenacity and never gives up on a record because of them. A `401 clock_skew`
is handled here: the signing clock takes the offset from the answer's `server_time` and
the request goes again at once.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Callable, Mapping, Optional

from terminal import signing
from terminal.lean import requests_module

requests = requests_module()  # without charset guessing: the answers are JSON

log = logging.getLogger("pingjia.agent")

MAX_SKEW_RETRIES = 2


class Transient(Exception):
    """The request did not get a usable answer; the same request may be tried again.

    `retry_after` (seconds) is set when the server asked for a pause (Retry-After).
    """

    def __init__(self, message: str, retry_after: Optional[float] = None, status: int = 0):
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status


@dataclass(frozen=True)
class Answer:
    status: int
    body: Optional[dict]  # None for 304
    headers: Mapping[str, str]  # case-insensitive (requests' own mapping)


def retry_after_s(value: Optional[str], now: float) -> Optional[float]:
    """Seconds from a Retry-After header: delta seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


def tls_options(central) -> dict:
    """requests' `verify` and `cert` from the central settings."""
    verify = (central.ca_bundle or True) if central.verify_tls else False
    cert = None
    if central.client_cert:
        cert = (central.client_cert, central.client_key) if central.client_key else central.client_cert
    return {"verify": verify, "cert": cert}


class Central:
    """Signed calls to the central API.

    `wall` is the system clock (Unix seconds), `mono_ms` the monotonic clock;
    `on_server_time(server_time, mono_ms)` hears every `server_time` an answer carries.
    """

    def __init__(self, central, *, device_id: str, secret: bytes, hash_alg: str,
                 session: Optional[requests.Session] = None, wall: Callable[[], float] = time.time,
                 mono_ms: Callable[[], int] = lambda: time.monotonic_ns() // 1_000_000,
                 on_server_time: Optional[Callable[[int, int], None]] = None):
        self.base = central.url.rstrip("/")
        self.device_id = device_id
        self._secret = secret
        self.hash_alg = hash_alg
        self.timeout = (float(central.timeout_s), float(central.timeout_s))  # (connect, read)
        self.session = session or requests.Session()
        # Also passed with every request: requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE
        # from the environment override a session's own `verify`, and a private CA must win.
        self.tls = tls_options(central)
        self.session.verify = self.tls["verify"]
        self.session.cert = self.tls["cert"]
        self.wall = wall
        self.mono_ms = mono_ms
        self.on_server_time = on_server_time
        self.skew_s = 0  # signing clock = wall + skew_s, learnt from clock_skew answers
        self.last_success: Optional[float] = None

    def signing_time(self) -> int:
        return int(self.wall() + self.skew_s)

    def call(self, method: str, path: str, body: Optional[bytes] = None,
             headers: Optional[dict] = None) -> Answer:
        """One request (plus immediate re-sends after clock_skew); raises Transient."""
        for _ in range(MAX_SKEW_RETRIES + 1):
            answer = self._once(method, path, body, headers)
            if answer is not None:
                return answer
        raise Transient("clock_skew persists after correcting the signing clock", status=401)

    def _once(self, method, path, body, headers) -> Optional[Answer]:
        data = body or b""
        sent = signing.sign_headers(device_id=self.device_id, secret=self._secret, alg=self.hash_alg,
                                    method=method, path=path, body=data,
                                    timestamp=self.signing_time())
        if body is not None:
            sent["Content-Type"] = "application/json"
        sent.update(headers or {})
        try:
            resp = self.session.request(method, self.base + path, data=body, headers=sent,
                                        timeout=self.timeout, **self.tls)
            content = resp.content  # read it all here so a dropped body is a Transient too
        except requests.RequestException as exc:
            raise Transient(f"{method} {path}: {type(exc).__name__}: {exc}") from None
        status = resp.status_code
        if status == 304:
            self._success()
            return Answer(304, None, resp.headers)
        parsed = _json(content)
        if isinstance(parsed, dict) and isinstance(parsed.get("server_time"), (int, float)):
            if self.on_server_time is not None and status < 500:
                self.on_server_time(int(parsed["server_time"]), self.mono_ms())
        if status == 401 and isinstance(parsed, dict) and parsed.get("error") == "clock_skew" \
                and isinstance(parsed.get("server_time"), (int, float)):
            self.skew_s = int(parsed["server_time"]) - int(self.wall())
            log.warning("central says our clock is off: signing clock corrected by %+d s", self.skew_s)
            return None
        if 200 <= status < 300:
            if not isinstance(parsed, dict):
                raise Transient(f"{method} {path}: answer {status} is not a JSON object", status=status)
            self._success()
            return Answer(status, parsed, resp.headers)
        error = parsed.get("error") if isinstance(parsed, dict) else None
        raise Transient(f"{method} {path}: HTTP {status}" + (f" {error}" if error else ""),
                        retry_after=retry_after_s(resp.headers.get("Retry-After"),
                                                    self.wall() + self.skew_s),
                        status=status)

    def _success(self) -> None:
        self.last_success = self.wall()

    def close(self) -> None:
        self.session.close()


def _json(content: bytes):
    try:
        return json.loads(content)
    except ValueError:
        return None
