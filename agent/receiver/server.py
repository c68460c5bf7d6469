"""The reference receiver's HTTP side: the central API (contracts/apis.md §2) on loopback.

A development, test, demo and pilot peer for the agent and the kiosk, not the production
central system. stdlib `ThreadingHTTPServer` with the local API's request handling
(terminal/http.py: body limits, JSON errors, connection caps, slow-client deadlines), routed
to the central API document `agent/central-openapi.json`. Every request but enrol must be
signed by a known device (agent/signing.py); records go through `ReceiverDB.ingest`, one
transaction per batch.

Faults (agent/receiver/faults.py) hit uploads only, after the request is read and
authenticated, so that what a client sees is a network or server failure and never a
verdict on its request.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import socket
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Mapping, Optional

from agent import signing
from agent.receiver.db import Device, ReceiverDB, ReceiverError, check_device
from agent.receiver.faults import FaultPlan, Faults, OUTCOMES
from agent.receiver.schemas import SPEC, Check, request_schema
from config.text import first_text_problem
from terminal.http import ApiFailure, HttpServer, JsonHandler, loggable, match, path_pattern

log = logging.getLogger("pingjia.receiver")

MAX_BODY_BYTES = 4 * 1024 * 1024   # 500 records are about 0.6 MiB
CLIENT_TIMEOUT_S = 30.0
HEAD_DEADLINE_S = 10.0     # request line and headers, from their first byte
BODY_DEADLINE_S = 60.0     # 4 MiB over a slow link; a trickle slower than this is dropped
MAX_CONNECTIONS = 64
MAX_PER_ADDRESS = 32       # one address (one device, or one NAT) cannot take all
UPLOADS = ("/v1/records", "/v1/records/corrections")
UNSIGNED = ("/v1/enroll",)
LOOKUP_CHECK = Check("Business")


def _routes() -> dict:
    """(template, METHOD) -> request schema name or None, from the document itself."""
    out = {}
    for template, item in SPEC["paths"].items():
        for method in item:
            if method != "parameters":
                out[(template, method.upper())] = request_schema(template, method)
    return out


ROUTES = _routes()
_CHECKS = {key: Check(name) for key, name in ROUTES.items() if name is not None}
# Concrete paths before templated ones, as OpenAPI matches them.
_PATTERNS = [(t, path_pattern(t)) for t in sorted({t for t, _ in ROUTES}, key=lambda t: "{" in t)]
_DEVICE_ID = Check("DeviceId")


def etag_of(data: bytes) -> str:
    return '"' + hashlib.sha256(data).hexdigest()[:32] + '"'


def etag_matches(header: Optional[str], etag: str) -> bool:
    if not header:
        return False
    tags = [t.strip() for t in header.split(",")]
    return "*" in tags or any(t.removeprefix("W/") == etag for t in tags)


class _Dropped(Exception):
    """The fault plan says: close the connection without an answer."""


class _ReceiverHandler(JsonHandler):
    """The local API's request handling (limits, JSON errors), routed to the central API."""

    server_version = "pingjia-receiver"
    api: "Receiver"
    head_deadline = HEAD_DEADLINE_S
    body_deadline = BODY_DEADLINE_S

    def _serve(self):
        """The base class's _dispatch sends ApiFailures and handles clients that went away."""
        self.api._count("requests")
        try:
            self._route()
        except _Dropped:
            self.close_connection = True
        except (ApiFailure, OSError):
            raise
        except Exception:
            log.exception("unexpected error on %s %s", self.command, loggable(self.path))
            raise ApiFailure(500, "internal", "the receiver had an internal error with this "
                             "request; send it again") from None

    def _route(self):
        path = self.path.split("?", 1)[0].split("#", 1)[0]
        template, params = match(path, _PATTERNS)
        if template is None:
            raise ApiFailure(404, "not_found", f"no such call: {loggable(path)}")
        methods = sorted(m for t, m in ROUTES if t == template)
        if self.command not in methods:
            raise ApiFailure(405, "method_not_allowed", f"{template} takes " + ", ".join(methods),
                             headers={"Allow": ", ".join(methods)})
        check = _CHECKS.get((template, self.command))
        body, unreadable = None, None
        self._raw = b""
        if check is not None:
            try:
                body = self._read_json()
            except ApiFailure as f:
                if f.code not in ("invalid_json", "invalid_text"):
                    raise
                unreadable = f  # said only to a caller whose signature holds
        else:
            self._discard_body()
        device = None if template in UNSIGNED else self._authenticate(path)
        if unreadable is not None:
            raise unreadable
        if "device_id" in params:
            if _DEVICE_ID.problem(params["device_id"]):
                raise ApiFailure(400, "invalid_request", "the device id in the path is malformed",
                                 field="device_id")
            if params["device_id"] != device.device_id:
                raise ApiFailure(403, "forbidden", "a device may only use its own device path")
        if check is not None:
            problem = check.problem(body)
            if problem:
                where, why = problem
                raise ApiFailure(400, "invalid_request", f"{where or 'body'} {why}",
                                 field=where or "body")
        fault = self.api._plan.draw() if template in UPLOADS else None
        if fault:
            self.api._count_fault(fault)
            self._before(fault)
        status, answer, headers = self.api._handle(template, self.command, device, body,
                                                   self.headers)
        if fault:
            self._after(fault, status, answer, headers)
        else:
            self._send(status, answer, headers)

    def _read_exactly(self, length: int) -> bytes:
        self._raw = super()._read_exactly(length)
        return self._raw

    def _text_problem(self, body):
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

    def _send(self, status: int, body, headers=None, *, body_share: float = 1.0):
        """The base class's answer; a 304 without its body (RFC 9110 §15.4.5), and for the
        partial fault only a share of the body."""
        if status != 304 and body_share == 1.0:
            super()._send(status, body, headers)
            return
        wire, self.wfile = self.wfile, io.BytesIO()
        try:
            super()._send(status, body, headers)
            data = self.wfile.getvalue()
        finally:
            self.wfile = wire
        head = data.index(b"\r\n\r\n") + 4
        if status == 304:  # and no Content-Length of a body that is not there
            lines = data[:head].split(b"\r\n")
            wire.write(b"\r\n".join(x for x in lines if not x.lower().startswith(
                (b"content-length:", b"content-type:"))))
        else:
            wire.write(data[:head + int((len(data) - head) * body_share)])
        wire.flush()

    def _authenticate(self, path: str) -> Device:
        now = self.api.clock()
        device_id = self.headers.get(signing.HEADER_DEVICE, "")
        device = self.api._device(device_id) if device_id else None
        if device is None:
            if not device_id:
                raise ApiFailure(401, "bad_signature", "X-Device-Id, X-Timestamp and X-Signature "
                                 "are required")
            raise ApiFailure(401, "unknown_device", "this receiver does not know the device "
                             f"{loggable(device_id)[:64]}; add it with --device or enrol it")
        try:
            signing.verify(self.headers, secret=device.secret, alg=device.hash_alg,
                           method=self.command, path=path, body=self._raw, now=now)
        except signing.SignatureError as exc:
            extra = {"server_time": exc.server_time} if exc.server_time is not None else {}
            raise ApiFailure(401, exc.code, exc.message, **extra) from None
        return device

    # --- faults ---------------------------------------------------------------------

    def _before(self, fault: str) -> None:
        """Faults that come instead of processing the request."""
        faults = self.api._plan.faults
        retry = {"Retry-After": str(faults.retry_after_s)}
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
            self.api._stopping.wait(self.api._plan.faults.slow_s)
            self._send(status, answer, headers)
            return
        if fault == "partial":
            self.close_connection = True
            self._send(status, answer, headers, body_share=0.5)
            return
        raise AssertionError(f"fault {fault} has no handling")


class _Server(HttpServer):
    """Keeps its connections, so that stop() ends keep-alive clients too (a stopped
    receiver must look down to an agent, not go on answering on old connections)."""

    def __init__(self, *args, **kw):
        self.connections: set = set()
        self._conn_lock = threading.Lock()
        super().__init__(*args, **kw)

    def process_request_thread(self, request, client_address):
        with self._conn_lock:
            self.connections.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._conn_lock:
                self.connections.discard(request)

    def cut_connections(self) -> None:
        with self._conn_lock:
            open_now = list(self.connections)
        for sock in open_now:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Receiver:
    """The reference receiver: `start()` serves on a background thread; `url` is its base.

    `devices` maps device ids to {"secret": bytes, "hash_alg"}; they are registered in the
    database (which also keeps enrolled devices across restarts). `config_dir` holds
    `<device_id>.json` or `default.json`; `lookup_file` is the lookup table
    (docs/receiver.md); `enroll_codes` maps codes to {"device_id"?, "hash_alg"?}.
    """

    def __init__(self, db_path, devices: Optional[Mapping[str, Mapping]] = None,
                 config_dir=None, lookup_file=None, enroll_codes: Optional[Mapping] = None,
                 faults: Optional[Faults] = None, bind: str = "127.0.0.1", port: int = 0,
                 clock: Callable[[], float] = time.time, seed=None, *,
                 max_body_bytes: int = MAX_BODY_BYTES, client_timeout: float = CLIENT_TIMEOUT_S,
                 max_connections: int = MAX_CONNECTIONS,
                 max_per_address: int = MAX_PER_ADDRESS):
        self.clock = clock
        self.db = ReceiverDB(db_path)
        self.config_dir = Path(config_dir) if config_dir is not None else None
        self.lookup_file = Path(lookup_file) if lookup_file is not None else None
        self.bind, self.port = bind, port
        self.client_timeout = client_timeout
        self.settings = SimpleNamespace(max_body_bytes=max_body_bytes)  # what the handler reads
        self.max_connections = max_connections
        self.max_per_address = max_per_address
        self._plan = FaultPlan(faults, seed)
        self._stats_lock = threading.Lock()
        self._stats = {"requests": 0, "accepted": 0, "duplicate": 0, "rejected": 0,
                       "faults": {k: 0 for k in OUTCOMES}}
        self._devices: dict[str, Device] = {}
        self._devices_lock = threading.Lock()
        for device_id, entry in (devices or {}).items():
            self.add_device(device_id, entry["secret"], entry.get("hash_alg", "sha256"),
                            source="settings")
        if enroll_codes:
            self.db.add_enroll_codes(enroll_codes)
        self._httpd: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None
        self._stopping = threading.Event()

    # --- life cycle -------------------------------------------------------------------

    def start(self) -> "Receiver":
        """Serve; after a stop() it serves again on the same port."""
        if self._httpd is not None:
            return self
        self._stopping.clear()
        handler = type("Handler", (_ReceiverHandler,), {"api": self})
        self._httpd = _Server((self.bind, self.port), handler, self.max_connections,
                              self.max_per_address)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_until_stopped,
                                        name="pingjia-receiver", daemon=True)
        self._thread.start()
        log.info("receiver on %s", self.url)
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()  # cuts a "slow" fault's wait short
        httpd.stop_serving()
        if self._thread is not None:
            self._thread.join(timeout=5)
        httpd.cut_connections()
        httpd.server_close()

    def close(self) -> None:
        self.stop()
        self.db.close()

    def __enter__(self) -> "Receiver":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host = f"[{self.bind}]" if ":" in self.bind else self.bind
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._httpd is not None

    # --- control and inspection -------------------------------------------------------

    def set_faults(self, faults: Optional[Faults] = None) -> None:
        self._plan.set(faults or Faults())

    @property
    def faults(self) -> Faults:
        return self._plan.faults

    def add_device(self, device_id: str, secret: bytes, hash_alg: str = "sha256", *,
                   source: str = "api") -> None:
        check_device(device_id, secret, hash_alg)
        device = self.db.add_device(device_id, secret, hash_alg, source=source, now=self.clock())
        with self._devices_lock:
            self._devices[device_id] = device

    def records(self, device_id: str) -> list[dict]:
        return self.db.records(device_id)

    def count(self, device_id: Optional[str] = None) -> int:
        return self.db.count(device_id)

    def chain_report(self, device_id: str) -> list[dict]:
        return self.db.chain_report(device_id)

    def corrections(self, device_id: str) -> list[dict]:
        return self.db.corrections(device_id)

    def heartbeats(self, device_id: str) -> list[dict]:
        return self.db.heartbeats(device_id)

    @property
    def stats(self) -> dict:
        with self._stats_lock:
            return {**self._stats, "faults": dict(self._stats["faults"])}

    def ingest(self, device: Device, records: list, now: Optional[float] = None) -> list[dict]:
        """Store a batch as POST /v1/records does (also used by import_file)."""
        results = self.db.ingest(device, records, self.clock() if now is None else now)
        self._count_results(results)
        return results

    # --- internals ----------------------------------------------------------------------

    def _count(self, name: str, n: int = 1) -> None:
        with self._stats_lock:
            self._stats[name] += n

    def _count_fault(self, outcome: str) -> None:
        with self._stats_lock:
            self._stats["faults"][outcome] += 1

    def _count_results(self, results: list[dict]) -> None:
        counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
        for r in results:
            counts[r["status"]] += 1
        with self._stats_lock:
            for k, n in counts.items():
                self._stats[k] += n

    def _device(self, device_id: str) -> Optional[Device]:
        with self._devices_lock:
            device = self._devices.get(device_id)
        if device is None:  # enrolled meanwhile, or registered by another process
            device = self.db.device(device_id)
            if device is not None:
                with self._devices_lock:
                    self._devices[device_id] = device
        return device

    def _handle(self, template: str, method: str, device: Optional[Device], body, headers):
        """(status, answer, headers) of an authenticated, well-formed request."""
        now = self.clock()
        server_time = int(now)
        if template == "/v1/records":
            results = self.ingest(device, body["records"], now)
            return 200, {"results": results, "server_time": server_time}, None
        if template == "/v1/records/corrections":
            results = self.db.add_corrections(device.device_id, body["corrections"], now)
            return 200, {"results": results, "server_time": server_time}, None
        if template == "/v1/devices/{device_id}/heartbeat":
            self.db.add_heartbeat(device.device_id, body, now)
            return 200, {"server_time": server_time}, None
        if template == "/v1/devices/{device_id}/config":
            return self._config(device.device_id, headers.get("If-None-Match"))
        if template == "/v1/lookup":
            return 200, {"businesses": self._lookup(body["cert_type"], body["cert_no"])}, None
        if template == "/v1/enroll":
            enrolled = self.db.enroll(body["enrollment_code"], body["hardware"], now)
            if enrolled is None:
                raise ApiFailure(403, "bad_enrollment_code", "unknown or already used enrolment code")
            device, secret_hex = enrolled
            with self._devices_lock:
                self._devices[device.device_id] = device
            log.warning("device %s enrolled", device.device_id)
            return 200, {"device_id": device.device_id, "secret": secret_hex,
                         "hash_alg": device.hash_alg}, None
        raise AssertionError(f"no handler for {method} {template}")

    def _config(self, device_id: str, if_none_match: Optional[str]):
        path = self.config_file(device_id)
        if path is None:
            raise ApiFailure(404, "no_config", f"no settings for device {device_id} on this receiver")
        data = path.read_bytes()
        try:
            body = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            body = None
        if not isinstance(body, dict):
            log.error("config file %s is not a JSON object", path)
            raise ApiFailure(500, "config_invalid", f"the receiver's config file {path.name} is "
                             "not a JSON object")
        etag = etag_of(data)
        if etag_matches(if_none_match, etag):
            return 304, None, {"ETag": etag}
        return 200, body, {"ETag": etag}

    def config_file(self, device_id: str) -> Optional[Path]:
        if self.config_dir is None:
            return None
        for name in (f"{device_id}.json", "default.json"):
            if (self.config_dir / name).is_file():
                return self.config_dir / name
        return None

    def _lookup(self, cert_type: str, cert_no: str) -> list[dict]:
        """Finished businesses of that person without a rating record here yet."""
        if self.lookup_file is None:
            return []
        try:
            people = load_lookup(self.lookup_file)
        except ReceiverError as exc:
            log.error("%s", exc)
            raise ApiFailure(500, "lookup_invalid", "the receiver's lookup file is unusable") from None
        found = people.get((cert_type, cert_no.upper()), [])
        rated = self.db.rated([b["project_no"] for b in found])
        return [b for b in found if b["project_no"] not in rated]


def load_lookup(path: Path) -> dict[tuple[str, str], list[dict]]:
    """The lookup file: {"people": [{"cert_type"?, "cert_no", "businesses": [...]}]}."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ReceiverError(f"lookup file {path}: {exc}") from None
    people = data.get("people") if isinstance(data, dict) else None
    if not isinstance(people, list):
        raise ReceiverError(f"lookup file {path}: needs a top-level \"people\" list")
    out: dict = {}
    for i, person in enumerate(people):
        if not isinstance(person, dict) or not isinstance(person.get("cert_no"), str) \
                or not isinstance(person.get("cert_type", "111"), str) \
                or not isinstance(person.get("businesses"), list):
            raise ReceiverError(f"lookup file {path}: people[{i}] needs cert_no (string) and "
                                "businesses (list)")
        for j, business in enumerate(person["businesses"]):
            problem = LOOKUP_CHECK.problem(business)
            if problem:  # the position only: the entry holds a person's ID number
                raise ReceiverError(f"lookup file {path}: people[{i}].businesses[{j}]"
                                    f".{problem[0]} {problem[1]}")
        key = (person.get("cert_type", "111"), person["cert_no"].upper())
        out.setdefault(key, []).extend(person["businesses"])
    return out
