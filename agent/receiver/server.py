"""The reference receiver: the central API (agent/central-openapi.json) on loopback, its life
cycle, its devices and counts, and what each call does.

A development, test, demo and pilot peer for the agent and the kiosk, not the production
central system. Served by the shared HTTP server (terminal/http_server.py) with the
receiver's request handling (agent/receiver/handler.py: routing, signatures, faults on
the wire); records go through `ReceiverDB.ingest`, one transaction per batch; the files it
serves are read by agent/receiver/files.py.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Mapping, Optional

from agent.receiver import files
from agent.receiver.db import Device, ReceiverDB, ReceiverError, check_device
from agent.receiver.faults import FaultPlan, Faults, OUTCOMES
from agent.receiver.handler import ReceiverHandler
from terminal.http import ApiFailure
from terminal.http_server import HttpServer

log = logging.getLogger("pingjia.receiver")

MAX_BODY_BYTES = 4 * 1024 * 1024   # 500 records are about 0.6 MiB
CLIENT_TIMEOUT_S = 30.0
MAX_CONNECTIONS = 64
MAX_PER_ADDRESS = 32       # one address (one device, or one NAT) cannot take all


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
        self._httpd: Optional[HttpServer] = None
        self.stopping = threading.Event()  # set while stopping: cuts a "slow" fault's wait short

    # --- life cycle -------------------------------------------------------------------

    def start(self) -> "Receiver":
        """Serve; after a stop() it serves again on the same port."""
        if self._httpd is not None:
            return self
        self.stopping.clear()
        handler = type("Handler", (ReceiverHandler,), {"api": self})
        self._httpd = HttpServer((self.bind, self.port), handler, self.max_connections,
                                 self.max_per_address)
        self.port = self._httpd.server_address[1]
        self._httpd.start("pingjia-receiver")
        log.info("receiver on %s", self.url)
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self.stopping.set()
        # A stopped receiver must look down to an agent, not go on answering on old
        # keep-alive connections.
        httpd.stop(end_connections=True)

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

    # --- what the request handler asks of it ------------------------------------------

    def count_request(self) -> None:
        with self._stats_lock:
            self._stats["requests"] += 1

    def draw_fault(self) -> Optional[str]:
        """The fault plan's outcome for one upload (None: none), counted."""
        fault = self._plan.draw()
        if fault:
            with self._stats_lock:
                self._stats["faults"][fault] += 1
        return fault

    def _count_results(self, results: list[dict]) -> None:
        counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
        for r in results:
            counts[r["status"]] += 1
        with self._stats_lock:
            for k, n in counts.items():
                self._stats[k] += n

    def device(self, device_id: str) -> Optional[Device]:
        """A known device (registered, or enrolled by any process), None if unknown."""
        with self._devices_lock:
            device = self._devices.get(device_id)
        if device is None:  # enrolled meanwhile, or registered by another process
            device = self.db.device(device_id)
            if device is not None:
                with self._devices_lock:
                    self._devices[device_id] = device
        return device

    def answer(self, template: str, method: str, device: Optional[Device], body, headers):
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
        path = files.config_file(self.config_dir, device_id)
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
        etag = files.etag_of(data)
        if files.etag_matches(if_none_match, etag):
            return 304, None, {"ETag": etag}
        return 200, body, {"ETag": etag}

    def config_file(self, device_id: str) -> Optional[Path]:
        return files.config_file(self.config_dir, device_id)

    def _lookup(self, cert_type: str, cert_no: str) -> list[dict]:
        """Finished businesses of that person without a rating record here yet."""
        if self.lookup_file is None:
            return []
        try:
            people = files.load_lookup(self.lookup_file)
        except ReceiverError as exc:
            log.error("%s", exc)
            raise ApiFailure(500, "lookup_invalid", "the receiver's lookup file is unusable") from None
        found = people.get((cert_type, cert_no.upper()), [])
        rated = self.db.rated([b["project_no"] for b in found])
        return [b for b in found if b["project_no"] not in rated]

