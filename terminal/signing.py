"""Request signatures of the central API (agent/central-openapi.json, docs/sync.md).

The agent signs, the reference receiver verifies; both use this module so the two
sides cannot drift. The signed string is
``METHOD\\nPATH\\nTIMESTAMP\\nhex(digest(body))`` where PATH is the request path without
the query string, TIMESTAMP the decimal Unix seconds of ``X-Timestamp`` and the digest
and the HMAC use the device's algorithm family (SHA-256 or SM3).
"""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Mapping

from terminal.records import HASH_ALGS

MAX_SKEW_S = 300

HEADER_DEVICE = "X-Device-Id"
HEADER_TIMESTAMP = "X-Timestamp"
HEADER_SIGNATURE = "X-Signature"


class SignatureError(Exception):
    """A request whose signature does not hold; ``code`` is the API error code."""

    def __init__(self, code: str, message: str, server_time: int | None = None):
        super().__init__(message)
        self.code = code  # "clock_skew" or "bad_signature"
        self.message = message
        self.server_time = server_time


def _check_alg(alg: str) -> str:
    if alg not in HASH_ALGS:
        raise ValueError(f"unknown hash algorithm {alg!r}; use one of {HASH_ALGS}")
    return alg


def body_digest(body: bytes, alg: str) -> str:
    return hashlib.new(_check_alg(alg), body or b"").hexdigest()


def string_to_sign(method: str, path: str, timestamp: int, body: bytes, alg: str) -> bytes:
    path = path.split("?", 1)[0]
    return f"{method.upper()}\n{path}\n{int(timestamp)}\n{body_digest(body, alg)}".encode("utf-8")


def signature(secret: bytes, method: str, path: str, timestamp: int, body: bytes, alg: str) -> str:
    return hmac.new(secret, string_to_sign(method, path, timestamp, body, alg),
                    _check_alg(alg)).hexdigest()


def sign_headers(*, device_id: str, secret: bytes, alg: str, method: str, path: str,
                 body: bytes, timestamp: int) -> dict[str, str]:
    """The three headers that authenticate one request."""
    return {
        HEADER_DEVICE: device_id,
        HEADER_TIMESTAMP: str(int(timestamp)),
        HEADER_SIGNATURE: signature(secret, method, path, timestamp, body, alg),
    }


@dataclass(frozen=True)
class Signed:
    device_id: str
    timestamp: int


def read_headers(headers: Mapping[str, str]) -> tuple[str, int, str]:
    """Device id, timestamp and signature from request headers (case-insensitive)."""
    lower = {k.lower(): v for k, v in headers.items()}
    device_id = lower.get(HEADER_DEVICE.lower(), "")
    raw_ts = lower.get(HEADER_TIMESTAMP.lower(), "")
    sig = lower.get(HEADER_SIGNATURE.lower(), "")
    if not device_id or not raw_ts or not sig:
        raise SignatureError("bad_signature", "X-Device-Id, X-Timestamp and X-Signature are required")
    try:
        timestamp = int(raw_ts)
    except ValueError:
        raise SignatureError("bad_signature", "X-Timestamp is not Unix seconds") from None
    return device_id, timestamp, sig


def verify(headers: Mapping[str, str], *, secret: bytes, alg: str, method: str, path: str,
           body: bytes, now: float, max_skew_s: int = MAX_SKEW_S) -> Signed:
    """Check a request; raise SignatureError with the answer's error code if it fails.

    The signature is checked before the clock, so that a ``clock_skew`` answer (which
    hands out the server time) only goes to a caller who holds the secret.
    """
    device_id, timestamp, sig = read_headers(headers)
    expected = signature(secret, method, path, timestamp, body, alg)
    if not hmac.compare_digest(expected, sig.lower()):
        raise SignatureError("bad_signature", "signature does not verify")
    if abs(timestamp - now) > max_skew_s:
        raise SignatureError("clock_skew", f"timestamp is {timestamp - now:+.0f} s from server time",
                             server_time=int(now))
    return Signed(device_id, timestamp)
