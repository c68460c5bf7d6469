"""The agent's requests hold to the central API document (agent/central-openapi.json).

The agent has no server of its own; its HTTP interface is the requests it makes. Every
request of a full cycle (config pull, uploads, corrections, heartbeat) is captured as it
went over the wire and checked against the document: the path and method exist, the
body validates against the request schema, the signature headers are there, and every
answer the receiver gave is one the document lists.
"""
from __future__ import annotations

import json
import re

import pytest

from agent.profiles import zhejiang
from agent.receiver.contract import SPEC
from terminal import contract
from tests.agent.conftest import draft, drafts, open_store
from tests.agent.test_sync_config import GOOD, publish


def operation(method: str, path: str) -> dict:
    for template, ops in SPEC["paths"].items():
        pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
        if re.match(pattern, path) and method.lower() in ops:
            return ops[method.lower()]
    raise AssertionError(f"{method} {path} is not in the central API document")


def request_schema(op: dict):
    ref = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    return ref["$ref"].rsplit("/", 1)[-1] if ref else None


def signature_headers() -> list[str]:
    schemes = SPEC["components"]["securitySchemes"]
    return [s["name"] for s in schemes.values() if s.get("in") == "header"]


@pytest.fixture
def captured(device, central_rx, make_agent):
    """Every request of one full cycle, as (method, path, headers, body, answer status)."""
    with open_store(device) as s:
        s.append(drafts(3) + [draft(4, synced=False, mono_ms=5_000)]
                 + drafts(1, start=5, level=2, tags=()))  # one refused: a 200 with "rejected"
    publish(central_rx, GOOD)
    agent = make_agent(central_rx.url, batch_size=2)
    seen = []
    agent.central.session.hooks["response"].append(lambda r, *a, **k: seen.append(
        (r.request.method, r.request.path_url, dict(r.request.headers), r.request.body, r.status_code)))
    agent.pull_config()
    agent.pull_config()  # 304
    agent.drain()        # records in three batches, then the correction
    agent.heartbeat()
    return seen


def test_every_request_of_the_agent_is_in_the_document(captured):
    kinds = set()
    for method, path, headers, body, status in captured:
        op = operation(method, path)
        assert str(status) in op["responses"], (method, path, status)
        for name in signature_headers():
            assert headers.get(name), (method, path, name)
        schema = request_schema(op)
        if schema is None:
            assert not body, (method, path)
            continue
        doc = json.loads(body)
        errors = [e.message for e in contract.validator(schema, SPEC).iter_errors(doc)]
        assert errors == [], (method, path, errors)
        kinds.add(schema)
        if schema == "RecordBatch":
            record = contract.validator("Record", SPEC)
            for item in doc["records"]:
                assert not list(record.iter_errors(item))
        if schema == "CorrectionBatch":
            for item in doc["corrections"]:
                assert not list(contract.validator("Correction", SPEC).iter_errors(item))
    assert kinds == {"RecordBatch", "CorrectionBatch", "Heartbeat"}
    assert {s for m, p, h, b, s in captured if p.endswith("/config")} == {200, 304}


def test_zhejiang_items_are_record_envelopes(device):
    from agent.outbox import Outbox
    with open_store(device) as s:
        s.append(drafts(2) + drafts(1, start=3, level=None))
    box = Outbox(device / "pingjia.db", device_id="PJQ-330106-0007", hash_alg="sha256")
    try:
        body = json.loads(zhejiang.encode(box.next_batch(500)))
    finally:
        box.close()
    assert not [e.message for e in contract.validator("RecordBatch", SPEC).iter_errors(body)]
