"""Faults the receiver injects (agent/receiver/faults.py) as a client meets them: 5xx and
429 with Retry-After, slow answers, dropped connections, half answers; uploads only."""
from __future__ import annotations

import time

import pytest
import requests

from agent.receiver import Faults, Receiver
from tests.agent.conftest import DEVICE_ID, SECRET
from tests.agent.receiver.conftest import Client, body_of, make_records, statuses


# --- faults -----------------------------------------------------------------------------

def faulty(rx, kind: str, **kw) -> None:
    rx.set_faults(Faults(rate=1.0, kinds=(kind,), **kw))


def test_5xx_and_429_store_nothing_and_say_when_to_retry(rx, client, tmp_path):
    records = make_records(tmp_path / "dev", 3)
    faulty(rx, "5xx", retry_after_s=2)
    seen = {client.upload(records).status_code for _ in range(12)}
    assert seen == {500, 503}
    faulty(rx, "429", retry_after_s=2)
    limited = client.upload(records)
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "2"
    assert limited.json()["error"] == "rate_limited"
    assert rx.count() == 0
    faults = rx.stats["faults"]
    assert faults["500"] + faults["503"] == 12 and faults["429"] == 1


def test_faults_hit_uploads_only(rx, client):
    faulty(rx, "5xx")
    assert client.post(f"/v1/devices/{DEVICE_ID}/heartbeat", {"q": 1}).status_code == 200
    rx.set_faults(Faults())
    assert rx.faults == Faults()


def test_slow_answer_after_storing(rx, client, tmp_path):
    records = make_records(tmp_path / "dev", 2)
    faulty(rx, "slow", slow_s=0.4)
    started = time.monotonic()
    answer = client.upload(records)
    assert time.monotonic() - started >= 0.4 and statuses(answer) == [("accepted", None)] * 2
    with pytest.raises(requests.Timeout):
        client.session.post(rx.url + "/v1/records", data=body_of({"records": records}), timeout=0.1,
                            headers=client.headers("POST", "/v1/records", body_of({"records": records})))


def test_drop_before_stores_nothing(rx, client, tmp_path):
    faulty(rx, "drop_before")
    with pytest.raises(requests.ConnectionError):
        client.upload(make_records(tmp_path / "dev", 3))
    assert rx.count() == 0 and rx.stats["faults"]["drop_before"] == 1


def test_drop_after_stores_the_batch_the_client_never_heard_of(rx, client, tmp_path):
    records = make_records(tmp_path / "dev", 3)
    faulty(rx, "drop_after")
    with pytest.raises(requests.ConnectionError):
        client.upload(records)
    assert rx.count() == 3
    rx.set_faults(Faults())
    assert statuses(client.upload(records)) == [("duplicate", None)] * 3


def test_partial_answer_after_storing(rx, client, tmp_path):
    records = make_records(tmp_path / "dev", 3)
    faulty(rx, "partial")
    with pytest.raises(requests.RequestException):
        client.upload(records).json()
    assert rx.count() == 3 and rx.stats["faults"]["partial"] == 1


def test_fault_draw_is_repeatable_for_a_seed(tmp_path):
    def draws(seed):
        with Receiver(tmp_path / f"rx-{seed}.db", devices={DEVICE_ID: {"secret": SECRET}},
                      faults=Faults(rate=0.5, kinds=("5xx", "429")), seed=seed) as r:
            c = Client(r.url)
            return [c.upload([]).status_code for _ in range(20)]
    assert draws(3) == draws(3)
    assert set(draws(3)) > {200}


def test_bad_fault_settings_are_refused():
    with pytest.raises(ValueError):
        Faults(rate=1.5)
    with pytest.raises(ValueError):
        Faults(rate=0.1, kinds=("flood",))
