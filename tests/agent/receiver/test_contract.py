"""agent/central-openapi.json is the contract: walk it against the running receiver.

The receiver serves exactly the documented operations; each answers a good request with
a documented status, the documented headers and a body that fits the documented schema;
each refusal is a documented status with the Error schema; the document's own examples
fit their schemas; the receiver's record check (agent/receiver/contract.py) gives
jsonschema's verdicts.
"""
from __future__ import annotations

import json

import pytest
import requests
from hypothesis import given, settings, strategies as st
from jsonschema import Draft202012Validator

from agent.receiver import Faults, Receiver
from agent.receiver.contract import SPEC, check
from agent.receiver.handler import ROUTES
from terminal import records as rec
from terminal.contract import registry, validator
from tests.agent.conftest import DEVICE_ID, SECRET, draft
from tests.agent.receiver.conftest import Client, make_records

SPEC_URI, REGISTRY = registry(SPEC)

METHODS = ("get", "put", "post", "delete", "patch")
OPS = {item[m]["operationId"]: (path, m.upper(), item[m])
       for path, item in SPEC["paths"].items() for m in METHODS if m in item}
CERT = "11010519491231002X"


def schema_validator(schema) -> Draft202012Validator:
    if "$ref" in schema and schema["$ref"].startswith("#"):
        schema = {"$ref": SPEC_URI + schema["$ref"]}
    return Draft202012Validator(schema, registry=REGISTRY)


def response_spec(op: dict, status: int) -> dict:
    spec = op["responses"].get(str(status))
    assert spec is not None, f"{op['operationId']} answered {status}, which the document does not list"
    while "$ref" in spec:
        spec = REGISTRY.resolver(SPEC_URI).lookup(SPEC_URI + spec["$ref"]).contents
    return spec


def check_answer(op: dict, answer: requests.Response) -> None:
    spec = response_spec(op, answer.status_code)
    for header in spec.get("headers", {}):
        assert header in answer.headers, f"{op['operationId']} {answer.status_code} lacks {header}"
    content = spec.get("content", {}).get("application/json")
    if content is None:
        assert answer.content == b""
        return
    body = answer.json()
    errors = list(schema_validator(content["schema"]).iter_errors(body))
    assert not errors, f"{op['operationId']} {answer.status_code}: {errors[0].message}"


@pytest.fixture
def rx(tmp_path):
    (tmp_path / "config").mkdir()
    example = OPS["get_config"][2]["responses"]["200"]["content"]["application/json"]["example"]
    (tmp_path / "config" / "default.json").write_text(json.dumps(example, ensure_ascii=False), "utf-8")
    business = OPS["lookup"][2]["responses"]["200"]["content"]["application/json"]["example"]
    (tmp_path / "lookup.json").write_text(json.dumps(
        {"people": [{"cert_no": CERT, **business}]}, ensure_ascii=False), "utf-8")
    code = OPS["enroll"][2]["requestBody"]["content"]["application/json"]["example"]["enrollment_code"]
    r = Receiver(tmp_path / "rx.db", devices={DEVICE_ID: {"secret": SECRET}},
                 config_dir=tmp_path / "config", lookup_file=tmp_path / "lookup.json",
                 enroll_codes={code: {}}, max_body_bytes=200_000)
    with r:
        yield r
    r.close()


def request_example(op_id: str):
    return OPS[op_id][2]["requestBody"]["content"]["application/json"]["example"]


def good_requests(rx, tmp_path):
    """(operationId, response) of one good call of each operation, in a working order."""
    c = Client(rx.url)
    records = make_records(tmp_path / "dev", 3, synced=False)
    fix = {**request_example("upload_corrections")["corrections"][0], "record_id": records[0]["record_id"]}
    config = f"/v1/devices/{DEVICE_ID}/config"
    first = c.get(config)
    return [
        ("upload_records", c.upload(records)),
        ("upload_records", c.upload(records)),  # duplicates
        ("upload_records", c.upload([{**records[0], "hash": "0" * 64}])),  # rejected
        ("upload_corrections", c.post("/v1/records/corrections", {"corrections": [fix]})),
        ("get_config", first),
        ("get_config", c.get(config, **{"If-None-Match": first.headers["ETag"]})),
        ("heartbeat", c.post(f"/v1/devices/{DEVICE_ID}/heartbeat", request_example("heartbeat"))),
        ("lookup", c.post("/v1/lookup", request_example("lookup"))),
        ("enroll", requests.post(rx.url + "/v1/enroll", json=request_example("enroll"))),
    ]


def test_the_receiver_serves_exactly_the_documented_operations():
    assert set(ROUTES.bodies) == {(path, method) for path, method, _ in OPS.values()}


def test_every_operation_answers_as_documented(rx, tmp_path):
    answers = good_requests(rx, tmp_path)
    assert {op for op, _ in answers} == set(OPS)
    for op_id, answer in answers:
        assert answer.status_code in (200, 304), (op_id, answer.status_code, answer.text)
        check_answer(OPS[op_id][2], answer)
    statuses = [r["status"] for op, a in answers if op == "upload_records" for r in a.json()["results"]]
    assert set(statuses) == {"accepted", "duplicate", "rejected"}


def concrete(path: str) -> str:
    return path.replace("{device_id}", DEVICE_ID)


@pytest.mark.parametrize("op_id", sorted(OPS))
def test_refusals_are_documented_errors(rx, op_id):
    path, method, op = OPS[op_id]
    path = concrete(path)
    c = Client(rx.url)
    answers = []
    if method == "POST":
        answers.append(c.post(path, raw=b"[1,"))                                   # 400 invalid_json
        answers.append(c.post(path, raw=b'[]'))                                    # 400 schema
        answers.append(c.post(path, raw=b"{}", **{"Content-Type": "text/plain"}))   # 415
        answers.append(c.post(path, raw=b" " * 200_001))                            # 413
        body = b"{}"
        answers.append(c.session.post(rx.url + path, data=iter([body]),
                                      headers=c.headers("POST", path, body)))       # 411
    if op.get("security", SPEC["security"]):
        if method == "GET":
            answers.append(requests.get(rx.url + path))
        else:
            answers.append(requests.post(rx.url + path, data=b"{}",
                                         headers={"Content-Type": "application/json"}))  # 401
    if "{device_id}" in OPS[op_id][0]:
        other = OPS[op_id][0].replace("{device_id}", "PJQ-330106-0099")
        if method == "GET":
            answers.append(c.get(other))
        else:
            answers.append(c.post(other, {}))                                       # 403
    if op_id.startswith("upload_"):
        rx.set_faults(Faults(rate=1.0, kinds=("5xx", "429"), retry_after_s=1))
        answers += [c.post(path, raw=b"{}") for _ in range(8)]                      # 500/503/429
        rx.set_faults(Faults())
    assert answers
    for answer in answers:
        assert 400 <= answer.status_code < 600, answer.status_code
        check_answer(op, answer)
        assert answer.json()["error"] and answer.json()["message"]
    assert rx.count() == 0


def test_the_documents_examples_fit_their_schemas():
    checked = 0
    for op_id, (_, _, op) in OPS.items():
        body = op.get("requestBody", {}).get("content", {}).get("application/json")
        if body and "example" in body:
            assert schema_validator(body["schema"]).is_valid(body["example"]), op_id
            checked += 1
        for status, spec in op["responses"].items():
            content = spec.get("content", {}).get("application/json", {})
            if "example" in content:
                assert schema_validator(content["schema"]).is_valid(content["example"]), (op_id, status)
                checked += 1
    assert checked >= 10


# --- the receiver's record check holds jsonschema's verdicts ------------------------------

RECORD = check("Record")
RECORD_FULL = validator("Record", SPEC)
_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-3, 12), st.floats(allow_nan=False),
                    st.text(max_size=70), st.sampled_from(["rating", "unrated", "timeout", "0" * 64,
                                                            "2026-11-22T09:20:00+08:00", "window"]),
                    st.lists(st.sampled_from(["101", "101", 3]), max_size=3), st.just({}))


@settings(max_examples=300, deadline=None)
@given(changes=st.dictionaries(st.sampled_from(sorted(rec.FIELDS) + ["extra"]), _VALUES, max_size=4),
       drop=st.sets(st.sampled_from(sorted(rec.FIELDS)), max_size=2))
def test_record_check_agrees_with_jsonschema(changes, drop):
    base = rec.seal({**draft(3, level=2, tags=["201"]), "record_id": "3f1c2a9e-8d4b-4c1e-9a57-0b6f2d8e4c11",
                     "device_id": DEVICE_ID, "chain_id": "c", "seq": 3, "boot_id": "b"},
                    "0" * 64, SECRET, "sha256")
    record = {k: v for k, v in {**base, **changes}.items() if k not in drop}
    assert (RECORD.problem(record) is None) == RECORD_FULL.is_valid(record)
