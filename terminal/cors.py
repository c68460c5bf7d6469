"""CORS for browser-based business systems (contract: docs/local-api.md, "Browsers").

Only the origins of `api.allow_origins` get CORS headers. A preflight from one of them is
answered without a token (browsers send none with it); from any other origin it is
refused, so the browser never sends the call itself and nothing reaches the device.
"""
from __future__ import annotations

from typing import Iterable, Optional

ALLOW_METHODS = "GET, POST, PUT, DELETE"
ALLOW_HEADERS = "Authorization, Content-Type"
MAX_AGE_S = 600   # how long a browser may reuse a preflight's answer
_DEFAULT_PORTS = {"http": ":80", "https": ":443"}


def normal(origin: str) -> str:
    """An origin as a browser sends it: lower case, no default port."""
    origin = origin.strip().lower()
    scheme = origin.partition("://")[0]
    port = _DEFAULT_PORTS.get(scheme)
    return origin[:-len(port)] if port and origin.endswith(port) else origin


class Cors:
    def __init__(self, origins: Iterable[str]):
        self.origins = frozenset(normal(o) for o in origins)

    def allowed(self, origin: Optional[str]) -> bool:
        return bool(origin) and normal(origin) in self.origins

    def headers(self, origin: Optional[str]) -> dict:
        """The headers every answer to this request's origin carries."""
        if not self.allowed(origin):
            return {}
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}

    def preflight(self, request_headers) -> Optional[dict]:
        """The headers of a 204 to an allowed preflight, None when its origin is not allowed."""
        origin = request_headers.get("Origin")
        if not self.allowed(origin):
            return None
        out = {**self.headers(origin), "Access-Control-Allow-Methods": ALLOW_METHODS,
               "Access-Control-Allow-Headers": ALLOW_HEADERS,
               "Access-Control-Max-Age": str(MAX_AGE_S)}
        if request_headers.get("Access-Control-Request-Private-Network", "").lower() == "true":
            out["Access-Control-Allow-Private-Network"] = "true"
        return out


def is_preflight(method: str, request_headers) -> bool:
    return method == "OPTIONS" and request_headers.get("Origin") is not None \
        and request_headers.get("Access-Control-Request-Method") is not None
