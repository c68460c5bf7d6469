"""The reference receiver's tests: a receiver on 127.0.0.1 port 0 knowing two devices,
and a client that signs its calls as the agent does.

Records are genuine: the terminal's Store seals them with the device secret. Requests
are signed with terminal/signing.py, as the agent signs them, and sent with `requests`.
The device store, drafts and the device's id and secret are the agent tests' own
(tests/agent/conftest.py).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests

from agent.receiver import Receiver
from terminal import records as rec
from terminal import signing
from tests.agent.conftest import DEVICE_ID, SECRET, drafts, open_store

OTHER_ID = "PJQ-330106-0008"
OTHER_SECRET = b"fedcba9876543210fedcba9876543210"


def make_records(data_dir: Path, n: int, start: int = 1, **kw) -> list[dict]:
    with open_store(data_dir) as store:
        return store.append(drafts(n, start=start, **kw))


def body_of(obj) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class Client:
    """Signed calls as the agent makes them."""

    def __init__(self, url: str, device_id: str = DEVICE_ID, secret: bytes = SECRET,
                 alg: str = "sha256", clock=time.time):
        self.url, self.device_id, self.secret, self.alg, self.clock = url, device_id, secret, alg, clock
        self.session = requests.Session()

    def headers(self, method: str, path: str, body: bytes, **extra) -> dict:
        out = signing.sign_headers(device_id=self.device_id, secret=self.secret, alg=self.alg,
                                   method=method, path=path, body=body,
                                   timestamp=int(self.clock()))
        if body:
            out["Content-Type"] = "application/json"
        out.update(extra)
        return out

    def post(self, path: str, obj=None, *, raw: bytes | None = None, **extra):
        body = raw if raw is not None else body_of(obj)
        return self.session.post(self.url + path, data=body, timeout=10,
                                 headers=self.headers("POST", path, body, **extra))

    def get(self, path: str, **extra):
        return self.session.get(self.url + path, timeout=10, headers=self.headers("GET", path, b"", **extra))

    def upload(self, records):
        return self.post("/v1/records", {"records": records})


@pytest.fixture
def rx(tmp_path):
    r = Receiver(tmp_path / "rx.db", devices={DEVICE_ID: {"secret": SECRET},
                                             OTHER_ID: {"secret": OTHER_SECRET}},
                 config_dir=tmp_path / "config", lookup_file=tmp_path / "lookup.json",
                 enroll_codes={"K7Q2-M9XD": {"device_id": "PJ-NEW-1"}, "FREE-CODE": {}}, seed=1)
    (tmp_path / "config").mkdir()
    with r:
        yield r
    r.close()


@pytest.fixture
def client(rx):
    return Client(rx.url)


def statuses(answer) -> list:
    return [(r["status"], r.get("error")) for r in answer.json()["results"]]


def resealed(record: dict, **changes) -> dict:
    """The record changed and sealed again with the real secret (a signed but bad record)."""
    return rec.seal({**record, **changes}, record["prev_hash"], SECRET, "sha256")
