"""The receiver's request handling (agent/receiver/handler.py) over real HTTP: signatures
and the receiver's clock, malformed requests, body limits, routes, a device's own paths."""
from __future__ import annotations

import hashlib
import time

import pytest
import requests

from agent.receiver import Receiver
from tests.agent.conftest import DEVICE_ID, SECRET, drafts, open_store
from tests.agent.receiver.conftest import (OTHER_ID, OTHER_SECRET, Client, body_of, make_records,
                                           statuses)


# --- signatures -------------------------------------------------------------------------

def test_signed_batch_is_accepted_and_held_as_sent(rx, client, tmp_path):
    records = make_records(tmp_path / "dev", 5)
    answer = client.upload(records)
    assert answer.status_code == 200
    assert statuses(answer) == [("accepted", None)] * 5
    assert [r["record_id"] for r in answer.json()["results"]] == [r["record_id"] for r in records]
    assert abs(answer.json()["server_time"] - time.time()) < 5
    assert rx.records(DEVICE_ID) == records
    assert rx.count() == rx.count(DEVICE_ID) == 5 and rx.chain_report(DEVICE_ID) == []
    assert rx.stats["accepted"] == 5


def test_bad_signature_is_401_and_stores_nothing(rx, tmp_path):
    records = make_records(tmp_path / "dev", 2)
    answer = Client(rx.url, secret=OTHER_SECRET).upload(records)
    assert answer.status_code == 401 and answer.json()["error"] == "bad_signature"
    assert "server_time" not in answer.json()
    body = body_of({"records": records})
    headers = Client(rx.url).headers("POST", "/v1/records", body)
    tampered = body.replace(b'"level":5', b'"level":4', 1)
    assert requests.post(rx.url + "/v1/records", data=tampered, headers=headers).status_code == 401
    assert rx.count() == 0


def test_clock_skew_is_401_with_server_time_only_for_a_valid_signature(rx, tmp_path):
    records = make_records(tmp_path / "dev", 1)
    late = Client(rx.url, clock=lambda: time.time() - 3600)
    answer = late.upload(records)
    assert answer.status_code == 401
    assert answer.json()["error"] == "clock_skew"
    assert abs(answer.json()["server_time"] - time.time()) < 5
    forged = Client(rx.url, secret=OTHER_SECRET, clock=lambda: time.time() - 3600).upload(records)
    assert forged.json()["error"] == "bad_signature" and "server_time" not in forged.json()
    assert rx.count() == 0


def test_receiver_clock_is_a_parameter(tmp_path):
    then = 1_795_310_478.0
    with Receiver(tmp_path / "rx.db", devices={DEVICE_ID: {"secret": SECRET}},
                  clock=lambda: then) as r:
        answer = Client(r.url, clock=lambda: then + 100).upload(make_records(tmp_path / "dev", 1))
        assert answer.status_code == 200 and answer.json()["server_time"] == int(then)
        assert Client(r.url).upload([]).json()["error"] == "clock_skew"


def test_unknown_device_and_missing_headers_are_401(rx, tmp_path):
    records = make_records(tmp_path / "dev", 1)
    answer = Client(rx.url, device_id="PJ-STRANGER").upload(records)
    assert answer.status_code == 401 and answer.json()["error"] == "unknown_device"
    bare = requests.post(rx.url + "/v1/records", data=body_of({"records": records}),
                         headers={"Content-Type": "application/json"})
    assert bare.status_code == 401 and bare.json()["error"] == "bad_signature"
    assert rx.count() == 0


def test_sm3_device(tmp_path):
    if "sm3" not in hashlib.algorithms_available:
        pytest.skip("this Python's OpenSSL has no SM3")
    with open_store(tmp_path / "dev", alg="sm3") as store:
        records = store.append(drafts(3))
    with Receiver(tmp_path / "rx.db", devices={DEVICE_ID: {"secret": SECRET, "hash_alg": "sm3"}}) as r:
        assert statuses(Client(r.url, alg="sm3").upload(records)) == [("accepted", None)] * 3
        assert Client(r.url).upload(records).status_code == 401  # signed with sha256


# --- malformed requests -----------------------------------------------------------------

MALFORMED = {
    "not JSON": (b'{"records": [', "application/json", 400, "invalid_json"),
    "NaN": (b'{"records": [NaN]}', "application/json", 400, "invalid_json"),
    "duplicate key": (b'{"records": [], "records": []}', "application/json", 400, "invalid_json"),
    "not an object": (b'[]', "application/json", 400, "invalid_request"),
    "no records": (b'{}', "application/json", 400, "invalid_request"),
    "records not a list": (b'{"records": {}}', "application/json", 400, "invalid_request"),
    "unknown key": (b'{"records": [], "more": 1}', "application/json", 400, "invalid_request"),
    "record without id": (b'{"records": [{"seq": 1}]}', "application/json", 400, "invalid_request"),
    "record id not a string": (b'{"records": [{"record_id": 7}]}', "application/json", 400,
                               "invalid_request"),
    "record not an object": (b'{"records": ["x"]}', "application/json", 400, "invalid_request"),
    "501 records": (body_of({"records": [{"record_id": str(i)} for i in range(501)]}),
                    "application/json", 400, "invalid_request"),
    "text/plain": (b'{"records": []}', "text/plain", 415, "unsupported_media_type"),
    "latin-1": (b'{"records": []}', "application/json; charset=latin-1", 415,
                "unsupported_media_type"),
    "not UTF-8": (b'{"records": ["\xff"]}', "application/json", 400, "invalid_json"),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_upload_is_4xx_with_a_reason_and_stores_nothing(rx, client, name):
    raw, ctype, status, code = MALFORMED[name]
    answer = client.post("/v1/records", raw=raw, **{"Content-Type": ctype})
    assert answer.status_code == status, answer.text
    error = answer.json()
    assert error["error"] == code and error["message"]
    assert rx.count() == 0 and rx.stats["accepted"] == rx.stats["rejected"] == 0


def test_schema_errors_name_the_field(client):
    answer = client.post("/v1/records", {"records": [{"record_id": "a"}, {"record_id": ""}]})
    assert answer.status_code == 400
    assert answer.json()["field"] == "records[1].record_id"
    assert "records[1].record_id" in answer.json()["message"]


def test_body_limits(tmp_path):
    with Receiver(tmp_path / "rx.db", devices={DEVICE_ID: {"secret": SECRET}},
                  max_body_bytes=1000) as r:
        c = Client(r.url)
        big = c.post("/v1/records", {"records": [{"record_id": "x" * 60}] * 20})
        assert big.status_code == 413 and big.json()["error"] == "body_too_large"
        body = body_of({"records": []})
        chunked = c.session.post(r.url + "/v1/records", data=iter([body]),
                                 headers=c.headers("POST", "/v1/records", body))
        assert chunked.status_code == 411 and chunked.json()["error"] == "length_required"
        assert r.count() == 0


def test_unknown_path_and_method(rx, client):
    assert client.get("/v1/nothing").status_code == 404
    wrong = client.get("/v1/records")
    assert wrong.status_code == 405 and wrong.headers["Allow"] == "POST"
    assert wrong.json()["error"] == "method_not_allowed"


def test_a_device_may_only_use_its_own_paths(rx, client):
    other = f"/v1/devices/{OTHER_ID}/heartbeat"
    answer = client.post(other, {"queue_depth": 0})
    assert answer.status_code == 403 and answer.json()["error"] == "forbidden"
    assert client.get("/v1/devices/bad%20id/config").status_code == 400
    assert rx.heartbeats(OTHER_ID) == []
