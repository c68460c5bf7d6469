"""The reference receiver's request handling: the central API (agent/central-openapi.json) read
and answered by the shared JSON-over-HTTP handler (terminal/http.py: body limits, JSON
errors, slow-client deadlines), routed by the central API document
`agent/central-openapi.json` (terminal/routes.py). Every request but enrol must be signed
by a known device (terminal/signing.py); what a call does is the Receiver's
(agent/receiver/server.py).

Faults (agent/receiver/faults.py) hit uploads only, after the request is read and
authenticated, so that what a client sees is a network or server failure and never a
verdict on its request. How each fault looks on the wire is here.
"""
from __future__ import annotations

import io
import logging

from agent.receiver.contract import SPEC, check
from agent.receiver.db import Device
from config.text import first_text_problem
from terminal import signing
from terminal.http import ApiFailure, JsonHandler, loggable
from terminal.routes import Routes

log = logging.getLogger("pingjia.receiver")

HEAD_DEADLINE_S = 10.0     # request line and headers, from their first byte
BODY_DEADLINE_S = 60.0     # 4 MiB over a slow link; a trickle slower than this is dropped
UPLOADS = ("/v1/records", "/v1/records/corrections")
UNSIGNED = ("/v1/enroll",)
ROUTES = Routes(SPEC)  # (template, METHOD) of every call of the document, and its body check
_DEVICE_ID = check("DeviceId")


class _Dropped(Exception):
    """The fault plan says: close the connection without an answer."""


class ReceiverHandler(JsonHandler):
    """The shared request handling, routed to the central API; `api` is the Receiver."""

    server_version = "pingjia-receiver"
    api: object  # the Receiver (agent/receiver/server.py), which makes this handler's class
    head_deadline = HEAD_DEADLINE_S
    body_deadline = BODY_DEADLINE_S
    internal_message = "the receiver had an internal error with this request; send it again"

    def serve(self):
        self.api.count_request()
        try:
            self._route()
        except _Dropped:
            self.close_connection = True

    def _route(self):
        path = self.path.split("?", 1)[0].split("#", 1)[0]
        template, params = ROUTES.find(path, self.command)
        body_check = ROUTES.check(template, self.command)
        body, unreadable = None, None
        if body_check is not None:
            try:
                body = self.read_json()
            except ApiFailure as f:
                if f.code not in ("invalid_json", "invalid_text"):
                    raise
                unreadable = f  # said only to a caller whose signature holds
        else:
            self.discard_body()
        device = None if template in UNSIGNED else self._authenticate(path)
        if unreadable is not None:
            raise unreadable
        if "device_id" in params:
            if _DEVICE_ID.problem(params["device_id"]):
                raise ApiFailure(400, "invalid_request", "the device id in the path is malformed",
                                 field="device_id")
            if params["device_id"] != device.device_id:
                raise ApiFailure(403, "forbidden", "a device may only use its own device path")
        if body_check is not None:
            problem = body_check.problem(body)
            if problem:
                where, why = problem
                raise ApiFailure(400, "invalid_request", f"{where or 'body'} {why}",
                                 field=where or "body")
        fault = self.api.draw_fault() if template in UPLOADS else None
        if fault:
            self._before(fault)
        status, answer, headers = self.api.answer(template, self.command, device, body,
                                                  self.headers)
        if fault:
            self._after(fault, status, answer, headers)
        else:
            self.send_json(status, answer, headers)

    def text_problem(self, body):
        """A batch's records are judged one by one (chain.judge: a record with bad text is
        `rejected`, the others go on); only what answers for them, the record ids, and the
        rest of the body must be clean here. Line breaks are fine outside records (a
        heartbeat may carry a multi-line message)."""
        if self.path.split("?", 1)[0] == "/v1/records" and isinstance(body, dict) \
                and isinstance(body.get("records"), list):
            ids = [r.get("record_id") if isinstance(r, dict) else None for r in body["records"]]
            rest = {k: v for k, v in body.items() if k != "records"}
            found = first_text_problem({"records": [{"record_id": i} for i in ids]})
            return found or first_text_problem(rest, multiline=True)
        return first_text_problem(body, multiline=True)

    def _authenticate(self, path: str) -> Device:
        now = self.api.clock()
        device_id = self.headers.get(signing.HEADER_DEVICE, "")
        device = self.api.device(device_id) if device_id else None
        if device is None:
            if not device_id:
                raise ApiFailure(401, "bad_signature", "X-Device-Id, X-Timestamp and X-Signature "
                                 "are required")
            raise ApiFailure(401, "unknown_device", "this receiver does not know the device "
                             f"{loggable(device_id)[:64]}; add it with --device or enrol it")
        try:
            signing.verify(self.headers, secret=device.secret, alg=device.hash_alg,
                           method=self.command, path=path, body=self.body_bytes, now=now)
        except signing.SignatureError as exc:
            extra = {"server_time": exc.server_time} if exc.server_time is not None else {}
            raise ApiFailure(401, exc.code, exc.message, **extra) from None
        return device

    # --- faults ---------------------------------------------------------------------

    def _before(self, fault: str) -> None:
        """Faults that come instead of processing the request."""
        retry = {"Retry-After": str(self.api.faults.retry_after_s)}
        if fault == "500":
            raise ApiFailure(500, "internal", "injected fault: internal error, nothing stored")
        if fault == "503":
            raise ApiFailure(503, "unavailable", "injected fault: unavailable, nothing stored",
                             headers=retry)
        if fault == "429":
            raise ApiFailure(429, "rate_limited", "injected fault: slow down, nothing stored",
                             headers=retry)
        if fault == "drop_before":
            raise _Dropped()

    def _after(self, fault: str, status: int, answer: dict, headers) -> None:
        """Faults that come after the request was processed (and stored)."""
        if fault == "drop_after":
            raise _Dropped()
        if fault == "slow":
            self.api.stopping.wait(self.api.faults.slow_s)
            self.send_json(status, answer, headers)
            return
        if fault == "partial":
            self.close_connection = True
            self._send_half(status, answer, headers)
            return
        raise AssertionError(f"fault {fault} has no handling")

    def _send_half(self, status: int, answer: dict, headers) -> None:
        """The answer's head and half of its body: a connection cut while answering."""
        wire, self.wfile = self.wfile, io.BytesIO()
        try:
            self.send_json(status, answer, headers)
            data = self.wfile.getvalue()
        finally:
            self.wfile = wire
        head = data.index(b"\r\n\r\n") + 4
        wire.write(data[:head + int((len(data) - head) * 0.5)])
        wire.flush()
