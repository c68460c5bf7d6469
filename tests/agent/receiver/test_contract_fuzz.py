"""Schemathesis against the reference receiver (agent/central-openapi.json), every
request signed as the agent signs it, over the exact bytes sent: no 5xx, every answer
as documented, the receiver answering after every operation and accepting a real
upload at the end.

Invalid data is not held to "must be refused" here: the signature headers the fuzzer
would break are always made valid, so a case it meant as invalid may be a valid one.
"""
from __future__ import annotations

import time
from urllib.parse import urlsplit

import pytest
import requests

from terminal import signing
from agent.receiver.contract import SPEC
from terminal.api import bundled_spec
from tests.agent.conftest import DEVICE_ID, SECRET
from tests.agent.receiver.conftest import Client, make_records
from tests.agent.receiver.test_contract import rx  # noqa: F401  (fixture)
from tests.terminal.fuzzkit import CHECKS, fuzz
from schemathesis.specs.openapi.checks import negative_data_rejection


def fuzz_receiver(rx, tmp_path, examples: int) -> int:
    session = requests.Session()

    def send(case):
        kw = case.as_transport_kwargs(base_url=rx.url)
        prepared = session.prepare_request(requests.Request(
            kw["method"], kw["url"], headers=kw.get("headers"), params=kw.get("params"),
            json=kw.get("json"), data=kw.get("data")))
        body = prepared.body or b""
        body = body.encode("utf-8") if isinstance(body, str) else body
        prepared.headers.update(signing.sign_headers(
            device_id=DEVICE_ID, secret=SECRET, alg="sha256", method=prepared.method,
            path=urlsplit(prepared.url).path, body=body, timestamp=int(time.time())))
        return session.send(prepared, timeout=10)

    def after(label):
        r = Client(rx.url).get(f"/v1/devices/{DEVICE_ID}/config")
        assert r.status_code in (200, 304), f"after {label}: {r.text}"

    try:
        sent = fuzz(bundled_spec(SPEC), send, examples, after,
                    checks=[c for c in CHECKS if c is not negative_data_rejection],
                    path_parameters={"device_id": DEVICE_ID})
    finally:
        session.close()
    before = rx.count(DEVICE_ID)
    r = Client(rx.url).upload(make_records(tmp_path / "dev", 3))
    assert r.status_code == 200 and {x["status"] for x in r.json()["results"]} == {"accepted"}, r.text
    assert rx.count(DEVICE_ID) == before + 3
    print(f"{sent} fuzz cases")
    return sent


def test_fuzz_the_receiver(rx, tmp_path):
    assert fuzz_receiver(rx, tmp_path, examples=8) >= 90


@pytest.mark.soak
def test_fuzz_the_receiver_long(rx, tmp_path):
    assert fuzz_receiver(rx, tmp_path, examples=200) >= 2000
