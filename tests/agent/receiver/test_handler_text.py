"""The reference receiver refuses text no store can hold (a lone surrogate from JSON's
"\\udfff") with 400 invalid_text naming the field, on every call, instead of failing
with a 500 when the text reaches SQLite; and an error never echoes a value that may be
a person's ID number."""
from __future__ import annotations

import json

import pytest

from tests.agent.conftest import DEVICE_ID
from tests.agent.receiver.conftest import Client, make_records


@pytest.mark.parametrize("path, body, field", [
    (f"/v1/devices/{DEVICE_ID}/heartbeat", b'{"note": "x\\udfff"}', "note"),
    ("/v1/records/corrections", b'{"corrections": [{"record_id": "\\udfff", "invited_at": "x", '
     b'"rated_at": "y", "basis": "ntp"}]}', "corrections[0].record_id"),
    ("/v1/enroll", b'{"enrollment_code": "\\udfff", "hardware": {}}', "enrollment_code"),
    ("/v1/lookup", b'{"cert_type": "111", "cert_no": "1\\udfff"}', "cert_no"),
])
def test_a_lone_surrogate_is_400_invalid_text(rx, path, body, field):
    r = Client(rx.url).post(path, raw=body)
    assert r.status_code == 400 and r.json()["error"] == "invalid_text", r.text
    assert r.json()["field"] == field


def test_a_record_with_a_lone_surrogate_is_rejected_alone(rx, tmp_path):
    client = Client(rx.url)
    records = make_records(tmp_path / "dev", 3)
    body = json.dumps({"records": records}).replace('"task_name": "', '"task_name": "\\udfff', 1)
    r = client.post("/v1/records", raw=body.encode())
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["status"] for x in results] == ["rejected", "accepted", "accepted"]
    assert results[0]["error"] == "invalid_text" and results[0]["record_id"] == records[0]["record_id"]
    assert rx.count(DEVICE_ID) == 2


def test_a_record_id_with_a_lone_surrogate_refuses_the_batch(rx):
    r = Client(rx.url).post("/v1/records", raw=b'{"records": [{"record_id": "a\\udfff"}]}')
    assert r.status_code == 400 and r.json()["field"] == "records[0].record_id", r.text


def test_a_multi_line_heartbeat_is_fine(rx):
    r = Client(rx.url).post(f"/v1/devices/{DEVICE_ID}/heartbeat", {"note": "one\ntwo"})
    assert r.status_code == 200, r.text


def test_a_malformed_id_number_is_not_echoed(rx):
    r = Client(rx.url).post("/v1/lookup", {"cert_type": "111", "cert_no": "110105-1949-1231"})
    assert r.status_code == 400 and r.json()["field"] == "cert_no"
    assert "1949" not in r.text
