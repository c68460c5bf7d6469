"""The kiosk's one online step: POST /v1/lookup for the card holder's finished businesses.

The flow asks with a StartLookup effect; `LookupClient` runs the request in a worker
thread (never on the event thread) with a short timeout, and posts a LookupDone back on
the terminal's queue: the businesses found, or an error kind the screens explain
("timeout", "network", "refused", "server").

The request goes through the agent's central client (`terminal.central_client.Central`): the same
signature (terminal/signing.py, device id, secret, hash algorithm), TLS settings and
clock-skew correction as the agent's uploads.

Privacy (docs/idcard-protocol.md §9): the ID number is in memory only while its request runs. It is
never logged, not even in an error (requests' messages name the URL, not the body); the
request and its body are dropped as soon as the answer is in.
"""
from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Callable, Optional

from terminal.central_client import Central, Transient
from config.text import first_text_problem
from terminal.contract import RECORD_SCHEMA, Check
from terminal.flow.model import Business, Finished, LookupDone, StartLookup
from terminal.lean import requests_module

requests = requests_module()  # without charset guessing: the answers are JSON

log = logging.getLogger("pingjia.lookup")

PATH = "/v1/lookup"
MAX_BUSINESSES = 50      # more than a person can page through at a kiosk
_FIELDS = ("project_no", "task_name", "task_code", "task_handle_item", "dept_code", "dept_name")
# Cut to size rather than refused (the business is still worth rating). The staff name
# becomes the record's, so its limit is the record contract's.
_LIMITS = {"staff_name": RECORD_SCHEMA["properties"]["staff_name"]["maxLength"], "finished_at": 40}
_BUSINESS = Check("Business")


class LookupClient:
    """Runs lookups off the event thread; `post` receives each LookupDone."""

    def __init__(self, central: Central, post: Callable[[LookupDone], None], workers: int = 2):
        self.central = central
        self.post = post
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lookup")

    @classmethod
    def from_settings(cls, settings, secret: bytes, post, url: Optional[str] = None,
                      **kw) -> "LookupClient":
        """`url` overrides central.url (the simulator's own receiver)."""
        central = replace(settings.central, url=url or settings.central.url,
                          timeout_s=settings.reader.lookup_timeout_s)
        if not central.url:
            raise ValueError("kiosk lookups need central.url")
        return cls(Central(central, device_id=settings.device.id, secret=secret,
                           hash_alg=settings.device.hash_alg), post, **kw)

    def __call__(self, request: StartLookup) -> None:
        """Start `request` in a worker; its answer is posted. Returns at once."""
        self._pool.submit(self._run, request)

    def _run(self, request: StartLookup) -> None:
        try:
            done = self.lookup(request)
        except Exception:  # never leave the flow waiting for an answer that cannot come
            log.exception("lookup %d failed", request.lookup_id)
            done = LookupDone(request.lookup_id, error="server")
        del request  # the last reference this thread holds to the ID number
        self.post(done)

    def lookup(self, request: StartLookup) -> LookupDone:
        """One lookup, blocking: the businesses found or the error kind."""
        body = json.dumps({"cert_type": request.cert_type, "cert_no": request.cert_no},
                          ensure_ascii=False).encode("utf-8")
        lookup_id = request.lookup_id
        try:
            answer = self.central.call("POST", PATH, body)
        except Transient as exc:
            kind = _error_kind(exc)
            log.warning("lookup %d: %s (%s)", lookup_id, kind, exc)
            return LookupDone(lookup_id, error=kind)
        finally:
            del body, request
        try:
            found = parse_businesses(answer.body)
        except ValueError as exc:
            log.warning("lookup %d: the answer is not usable: %s", lookup_id, exc)
            return LookupDone(lookup_id, error="server")
        log.info("lookup %d: %d business(es) found", lookup_id, len(found))
        return LookupDone(lookup_id, businesses=found)

    def close(self) -> None:
        """Stop taking lookups; one still running ends by its timeout. Safe twice."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.central.close()


def _error_kind(exc: Transient) -> str:
    if exc.status == 0:
        cause = exc.__cause__ or exc.__context__
        return "timeout" if isinstance(cause, requests.Timeout) else "network"
    if exc.status == 408:
        return "timeout"
    return "refused" if 400 <= exc.status < 500 and exc.status != 429 else "server"


def parse_businesses(body) -> tuple:
    """The answer's businesses as Finished; entries that would not make a valid record
    (no serial, no item name, overlong or control characters) are left out."""
    items = body.get("businesses") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise ValueError("no list of businesses")
    out, left_out = [], 0
    for item in items[:MAX_BUSINESSES]:
        if not isinstance(item, dict):
            left_out += 1
            continue
        fields = {k: item[k].strip() for k in _FIELDS if isinstance(item.get(k), str)}
        extra = {k: str(item.get(k) or "").strip()[:n] for k, n in _LIMITS.items()}
        # Text no record can hold drops that business only: the others can still be
        # rated, and the person is not sent away for the centre's fault.
        problem = first_text_problem({**fields, **extra}) or _BUSINESS.problem(fields)
        if problem is not None:
            log.warning("lookup answer: a business left out: %s %s", *problem)
            left_out += 1
            continue
        out.append(Finished(Business(**fields), **extra))
    if left_out:
        log.warning("lookup answer: %d of %d business(es) left out", left_out,
                    min(len(items), MAX_BUSINESSES))
    return tuple(out)
