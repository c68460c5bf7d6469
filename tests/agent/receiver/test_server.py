"""The Receiver (agent/receiver/server.py): enrolment, stop and start on the same port,
devices and records across a restart, device entries it refuses."""
from __future__ import annotations

import pytest
import requests

from agent.receiver import Receiver
from agent.receiver.db import ReceiverError
from tests.agent.conftest import DEVICE_ID, SECRET
from tests.agent.receiver.conftest import Client, make_records, statuses


# --- enrolment --------------------------------------------------------------------------

def test_enroll_code_works_once_and_the_device_can_sign(rx):
    ask = {"enrollment_code": "K7Q2-M9XD", "hardware": {"board": "Raspberry Pi 4 Model B"}}
    first = requests.post(rx.url + "/v1/enroll", json=ask)
    assert first.status_code == 200
    enrolled = first.json()
    assert enrolled["device_id"] == "PJ-NEW-1" and enrolled["hash_alg"] == "sha256"
    assert len(enrolled["secret"]) == 64
    again = requests.post(rx.url + "/v1/enroll", json=ask)
    assert again.status_code == 403 and again.json()["error"] == "bad_enrollment_code"
    device = Client(rx.url, enrolled["device_id"], enrolled["secret"].encode("ascii"))
    assert device.post("/v1/devices/PJ-NEW-1/heartbeat", {"queue_depth": 0}).status_code == 200
    free = requests.post(rx.url + "/v1/enroll", json={**ask, "enrollment_code": "FREE-CODE"}).json()
    assert free["device_id"].startswith("PJ-") and free["device_id"] != "PJ-NEW-1"
    assert requests.post(rx.url + "/v1/enroll", json={**ask, "enrollment_code": "NOPE"}).status_code == 403
    assert requests.post(rx.url + "/v1/enroll", json={"enrollment_code": "x"}).status_code == 400


# --- life cycle -------------------------------------------------------------------------

def test_stop_ends_keep_alive_connections_and_start_serves_the_same_port(rx, client, tmp_path):
    records = make_records(tmp_path / "dev", 2)
    client.upload(records[:1])
    url = rx.url
    rx.stop()
    with pytest.raises(requests.ConnectionError):
        client.upload(records[1:])
    rx.start()
    assert rx.url == url and statuses(client.upload(records)) == [("duplicate", None), ("accepted", None)]


def test_devices_and_records_survive_a_restart(tmp_path):
    records = make_records(tmp_path / "dev", 2)
    with Receiver(tmp_path / "rx.db", devices={DEVICE_ID: {"secret": SECRET}}) as r:
        Client(r.url).upload(records)
    r.close()
    with Receiver(tmp_path / "rx.db") as r:
        assert statuses(Client(r.url).upload(records)) == [("duplicate", None)] * 2
        assert r.records(DEVICE_ID) == records
    r.close()


def test_bad_device_entries_are_refused(tmp_path):
    with pytest.raises(ReceiverError):
        Receiver(tmp_path / "rx.db", devices={DEVICE_ID: {"secret": b"short"}})
    with pytest.raises(ReceiverError):
        Receiver(tmp_path / "rx2.db", devices={"bad id": {"secret": SECRET}})
