"""A small client of the terminal's local API.

`LocalClient` is what a script or a technician's command uses to invite, cancel, sign
staff in and out, pause the window and read a visit; the `pingjia` commands built on it
are in config/cli/local_api.py.
"""
from __future__ import annotations

import dataclasses
from typing import Iterable, Mapping, Optional
from urllib.parse import quote


class ApiError(Exception):
    """The terminal answered with an error: HTTP status, its code and its message."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def __str__(self) -> str:
        return f"{self.message} ({self.status} {self.code})"


class Unreachable(Exception):
    """Nothing answers at the address: the terminal is not running there, or not yet."""


class LocalClient:
    def __init__(self, base_url: str, token: str, timeout: float = 5,
                 cacert: Optional[str] = None):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.verify = cacert or True  # HTTPS: the hall CA's certificate, else the system's CAs

    # --- the calls ----------------------------------------------------------------------

    def invite(self, items: Iterable, staff=None, visit_id: Optional[str] = None) -> dict:
        """Invite a rating of `items` (mappings, or Business objects); 201 body."""
        body: dict = {"items": [_item(i) for i in items]}
        if staff is not None:
            body["staff"] = _staff(staff)
        if visit_id is not None:
            body["visit_id"] = visit_id
        return self._call("POST", "/v1/invitations", body)

    def visit(self, visit_id: str) -> dict:
        return self._call("GET", "/v1/invitations/" + quote(visit_id, safe=""))

    def cancel(self) -> dict:
        return self._call("DELETE", "/v1/invitations/current")

    def sign_in(self, id: str, name: str) -> dict:  # noqa: A002 - the API's field name
        return self._call("PUT", "/v1/staff", {"id": id, "name": name})

    def sign_out(self) -> dict:
        return self._call("DELETE", "/v1/staff")

    def window(self, state: str, message: Optional[str] = None) -> dict:
        body = {"state": state}
        if message is not None:
            body["message"] = message
        return self._call("PUT", "/v1/window", body)

    def status(self) -> dict:
        return self._call("GET", "/v1/status")

    # --- technician calls (docs/cli.md) --------------------------------------------------

    def reload_config(self) -> dict:
        """Re-read the settings file; the answer says what changed and what needs a restart."""
        return self._call("POST", "/v1/config/reload")

    def start_test(self, kind: str, seconds: Optional[int] = None) -> dict:
        """Start the "display" or "buttons" test on the terminal's own hardware."""
        body: dict = {"kind": kind}
        if seconds is not None:
            body["seconds"] = seconds
        return self._call("POST", "/v1/test", body)

    def test_progress(self) -> dict:
        return self._call("GET", "/v1/test")

    def stop_test(self) -> dict:
        return self._call("DELETE", "/v1/test")

    def reader_test(self) -> dict:
        return self._call("GET", "/v1/test/reader")

    # --- HTTP -----------------------------------------------------------------------------

    def _call(self, method: str, path: str, body=None) -> dict:
        import requests  # here: every `pingjia` command loads this module, few call out

        url = self.base_url + path
        try:
            r = requests.request(method, url, json=body, timeout=self.timeout, verify=self.verify,
                                 headers={"Authorization": f"Bearer {self.token}"})
        except requests.exceptions.SSLError as exc:
            raise Unreachable(f"the terminal at {self.base_url} has a certificate this machine "
                              f"does not trust ({_ssl_reason(exc)}): pass --cacert with the "
                              "hall CA's certificate (or set PINGJIA_CACERT)") from None
        except requests.Timeout:
            raise Unreachable(f"the terminal at {self.base_url} did not answer within "
                              f"{self.timeout:g} s") from None
        except requests.ConnectionError as exc:
            if "refused" in str(exc).lower():
                raise Unreachable(f"the terminal is not running on {self.base_url} (connection "
                                  "refused): start it, or check --host and --port") from None
            raise Unreachable(f"cannot reach the terminal at {self.base_url}: {exc}") from None
        try:
            answer = r.json()
        except ValueError:
            answer = None
        if r.status_code >= 400:
            if isinstance(answer, dict) and "error" in answer:
                raise ApiError(r.status_code, str(answer["error"]), str(answer.get("message", "")))
            raise ApiError(r.status_code, "http_error", f"{r.reason}: {r.text[:200]} (is this "
                                                        "a Pingjia terminal?)")
        if not isinstance(answer, dict):
            raise ApiError(r.status_code, "bad_answer", "the answer is not a JSON object "
                                                        "(is this a Pingjia terminal?)")
        return answer


def _ssl_reason(exc) -> str:
    text = str(exc)
    for reason in ("CERTIFICATE_VERIFY_FAILED", "WRONG_VERSION_NUMBER", "hostname mismatch",
                   "IP address mismatch"):
        if reason in text:
            return reason
    return text[:120]


def base_url(host: str, port: int, https: bool) -> str:
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{'https' if https else 'http'}://{host}:{port}"


def _item(item) -> dict:
    if dataclasses.is_dataclass(item):
        item = dataclasses.asdict(item)
    # Optional fields left empty are left out: the device fills in its defaults.
    return {k: v for k, v in dict(item).items() if v not in ("", None)}


def _staff(staff) -> dict:
    if dataclasses.is_dataclass(staff):
        staff = dataclasses.asdict(staff)
    if isinstance(staff, Mapping):
        return {"id": staff["id"], "name": staff["name"]}
    staff_id, name = staff
    return {"id": staff_id, "name": name}
