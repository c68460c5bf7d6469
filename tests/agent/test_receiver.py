"""The reference receiver over real HTTP: signatures, bad requests, verdicts, chain report,
config, lookup, enrolment, corrections, heartbeats, faults, import.

Records are genuine: the terminal's Store seals them with the device secret. Requests
are signed with terminal/signing.py, as the agent signs them, and sent with `requests`.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest
import requests
from hypothesis import given, settings, strategies as st

from terminal import signing
from agent.receiver import Faults, Receiver, import_file
from agent.receiver.db import ReceiverError
from agent.receiver.contract import SPEC, check
from terminal.contract import validator
from terminal import records as rec
from tests.agent.conftest import DEVICE_ID, SECRET, draft, drafts, open_store

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


# --- verdicts per record ----------------------------------------------------------------

def test_same_batch_twice_is_duplicate(rx, client, tmp_path):
    records = make_records(tmp_path / "dev", 4)
    client.upload(records[:2])
    assert statuses(client.upload(records)) == [("duplicate", None)] * 2 + [("accepted", None)] * 2
    assert statuses(client.upload(records[3:] * 2)) == [("duplicate", None)] * 2
    assert rx.count() == 4 and rx.stats["duplicate"] == 4


def test_same_record_id_with_other_content_is_a_conflict(rx, client, tmp_path):
    first = make_records(tmp_path / "dev", 1)[0]
    client.upload([first])
    other = rec.seal({**first, "staff_name": "李四"}, first["prev_hash"], SECRET, "sha256")
    assert statuses(client.upload([other])) == [("rejected", "conflict")]
    assert rx.records(DEVICE_ID) == [first]


def sealed(record: dict, **changes) -> dict:
    """The record changed and sealed again with the real secret (a signed but bad record)."""
    return rec.seal({**record, **changes}, record["prev_hash"], SECRET, "sha256")


def test_bad_records_are_rejected_with_a_reason_and_block_nothing(rx, client, tmp_path):
    good = make_records(tmp_path / "dev", 7)
    batch = [
        good[0],
        {**good[1], "level": 1, "score": 0},                      # edited: hash no longer fits
        {**good[2], "hash": rec.record_hash({**good[2], "level": 4, "score": 8}, "sha256"),
         "level": 4, "score": 8},                                 # hash redone, not the sig
        sealed(good[3], level=5, score=8),                        # breaks a rule
        sealed(good[4], level=9, score=10),                       # breaks the schema
        {**good[5], "device_id": OTHER_ID},                       # someone else's record
        good[6],
    ]
    assert statuses(client.upload(batch)) == [
        ("accepted", None), ("rejected", "bad_hash"), ("rejected", "bad_sig"),
        ("rejected", "bad_level_or_score"), ("rejected", "invalid_record"),
        ("rejected", "device_mismatch"), ("accepted", None)]
    assert rx.count() == 2 and rx.stats["rejected"] == 5
    assert {r["seq"] for r in rx.records(DEVICE_ID)} == {1, 7}
    kinds = {(e["kind"], e["seq"]) for e in rx.chain_report(DEVICE_ID)}
    assert {("bad_hash", 2), ("bad_sig", 3), ("gap", 2)} <= kinds


def test_a_record_that_is_no_object_member_is_rejected_not_fatal(rx, client, tmp_path):
    good = make_records(tmp_path / "dev", 1)[0]
    weird = {"record_id": "x", "device_id": DEVICE_ID, "hash": "é", "sig": "é"}
    assert statuses(client.upload([weird, good])) == [("rejected", "bad_hash"), ("accepted", None)]


# --- chain report -----------------------------------------------------------------------

def test_chain_report_shows_gaps_even_when_batches_arrive_out_of_order(rx, client, tmp_path):
    records = make_records(tmp_path / "dev", 10)
    client.upload(records[6:])
    client.upload(records[:3])
    report = rx.chain_report(DEVICE_ID)
    assert [(e["kind"], e["seq"], e.get("last_seq")) for e in report] == [("gap", 4, 6)]
    assert report[0]["chain_id"] == records[0]["chain_id"] and "4-6" in report[0]["detail"]
    client.upload(records[3:6])
    assert rx.chain_report(DEVICE_ID) == []


def test_chain_report_shows_an_edited_record(rx, client, tmp_path):
    """Edited and sealed again with the device secret: only the next link shows it."""
    records = make_records(tmp_path / "dev", 6)
    records[3] = sealed(records[3], staff_name="张三")
    assert statuses(client.upload(records)) == [("accepted", None)] * 6
    assert [(e["kind"], e["seq"]) for e in rx.chain_report(DEVICE_ID)] == [("edited", 5)]


def test_chain_report_shows_a_reset(rx, client, tmp_path):
    client.upload(make_records(tmp_path / "dev", 3))
    client.upload(make_records(tmp_path / "new-storage", 2))
    report = rx.chain_report(DEVICE_ID)
    assert [(e["kind"], e["seq"]) for e in report] == [("chain_reset", 1)]
    assert "held up to seq 3" in report[0]["detail"]
    assert len(rx.records(DEVICE_ID)) == 5


def test_chain_report_shows_a_reused_seq(rx, client, tmp_path):
    records = make_records(tmp_path / "dev", 3)
    twin = sealed({**records[2], "record_id": "9f0c1b2a-0000-4000-8000-000000000003"})
    client.upload(records + [twin])
    assert [e["kind"] for e in rx.chain_report(DEVICE_ID)] == ["duplicate_seq"]


# --- corrections and heartbeats ---------------------------------------------------------

def test_corrections(rx, client, tmp_path):
    records = make_records(tmp_path / "dev", 2, synced=False)
    client.upload(records)
    fix = {"record_id": records[0]["record_id"], "invited_at": "2026-11-22T10:00:00+08:00",
           "rated_at": "2026-11-22T10:01:10+08:00", "basis": "server_time"}
    answer = client.post("/v1/records/corrections", {"corrections": [
        fix, fix, {**fix, "record_id": "no-such-record"}, {**fix, "record_id": records[1]["record_id"],
                                                             "basis": "guess"}]})
    assert answer.status_code == 200 and isinstance(answer.json()["server_time"], int)
    assert statuses(answer) == [("accepted", None), ("duplicate", None),
                                ("rejected", "unknown_record"), ("rejected", "invalid_correction")]
    assert rx.corrections(DEVICE_ID) == [fix]
    assert rx.records(DEVICE_ID) == records  # the signed record never changes


def test_corrections_of_another_devices_record_are_unknown(rx, client, tmp_path):
    records = make_records(tmp_path / "dev", 1)
    client.upload(records)
    fix = {"record_id": records[0]["record_id"], "invited_at": "2026-11-22T10:00:00+08:00",
           "rated_at": None, "basis": "ntp"}
    other = Client(rx.url, OTHER_ID, OTHER_SECRET)
    assert statuses(other.post("/v1/records/corrections", {"corrections": [fix]})) == [
        ("rejected", "unknown_record")]


def test_heartbeat(rx, client):
    beat = {"queue_depth": 3, "clock": {"synced": False}, "versions": {"pingjia": "0.1.0"}}
    answer = client.post(f"/v1/devices/{DEVICE_ID}/heartbeat", beat)
    assert answer.status_code == 200 and set(answer.json()) == {"server_time"}
    assert rx.heartbeats(DEVICE_ID) == [beat]
    too_big = client.post(f"/v1/devices/{DEVICE_ID}/heartbeat", {str(i): i for i in range(101)})
    assert too_big.status_code == 400 and rx.heartbeats(DEVICE_ID) == [beat]


# --- config -----------------------------------------------------------------------------

CONFIG = {"tags": {"version": "3", "levels": {"1": [{"code": "101", "text": "办事指南不准确"}]}},
          "texts": {"thanks": "感谢您的评价"}, "invite_timeout_s": 45}


def test_config_with_etag(rx, client):
    path = f"/v1/devices/{DEVICE_ID}/config"
    missing = client.get(path)
    assert missing.status_code == 404 and missing.json()["error"] == "no_config"
    (rx.config_dir / "default.json").write_text(json.dumps(CONFIG, ensure_ascii=False), "utf-8")
    first = client.get(path)
    assert first.status_code == 200 and first.json() == CONFIG
    etag = first.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"')
    again = client.get(path, **{"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["ETag"] == etag
    assert client.get(path, **{"If-None-Match": '"other"'}).status_code == 200
    own = {**CONFIG, "invite_timeout_s": 90}
    (rx.config_dir / f"{DEVICE_ID}.json").write_text(json.dumps(own), "utf-8")
    changed = client.get(path, **{"If-None-Match": etag})
    assert changed.status_code == 200 and changed.json() == own and changed.headers["ETag"] != etag
    other = Client(rx.url, OTHER_ID, OTHER_SECRET).get(f"/v1/devices/{OTHER_ID}/config")
    assert other.json() == CONFIG  # falls back to default.json


def test_unreadable_config_file_is_500_config_invalid(rx, client):
    (rx.config_dir / f"{DEVICE_ID}.json").write_text("[1, 2", "utf-8")
    answer = client.get(f"/v1/devices/{DEVICE_ID}/config")
    assert answer.status_code == 500 and answer.json()["error"] == "config_invalid"


# --- lookup -----------------------------------------------------------------------------

CERT = "11010519491231002X"
BUSINESS = {"project_no": "330106202611220000001", "task_name": "不动产登记", "task_code": "T1",
            "dept_name": "区行政服务中心", "staff_name": "王芳", "finished_at": "2026-11-22T09:20:01+08:00"}


def write_lookup(path: Path, businesses) -> None:
    path.write_text(json.dumps({"people": [{"cert_type": "111", "cert_no": CERT,
                                            "businesses": businesses}]}, ensure_ascii=False), "utf-8")


def test_lookup_serves_businesses_not_yet_rated(rx, client, tmp_path):
    second = {**BUSINESS, "project_no": "330106202611220000002"}
    write_lookup(rx.lookup_file, [BUSINESS, second])
    ask = {"cert_type": "111", "cert_no": CERT.lower()}
    assert client.post("/v1/lookup", ask).json() == {"businesses": [BUSINESS, second]}
    rated = draft(1)  # its project_no is 330106202611220000001
    assert rated["project_no"] == BUSINESS["project_no"]
    with open_store(tmp_path / "dev") as store:
        client.upload(store.append([rated]))
    assert client.post("/v1/lookup", ask).json() == {"businesses": [second]}
    assert client.post("/v1/lookup", {"cert_type": "111", "cert_no": "1"}).json() == {"businesses": []}
    bad = client.post("/v1/lookup", {"cert_type": "111", "cert_no": "1; drop"})
    assert bad.status_code == 400 and bad.json()["field"] == "cert_no"


def test_lookup_never_echoes_the_id_number(rx, client, caplog):
    rx.lookup_file.write_text('{"people": [{"cert_no": "%s", "businesses": [{}]}]}' % CERT, "utf-8")
    answer = client.post("/v1/lookup", {"cert_type": "111", "cert_no": CERT})
    assert answer.status_code == 500 and answer.json()["error"] == "lookup_invalid"
    assert CERT not in answer.text and CERT not in caplog.text


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


# --- import -----------------------------------------------------------------------------

def export_file(directory: Path, records: list[dict]) -> Path:
    """An outbox export file as `pingjia outbox export` writes it (config/outbox.py)."""
    header = {"format": "pingjia-outbox", "version": 1, "device_id": DEVICE_ID,
              "chain_id": records[0]["chain_id"], "hash_alg": "sha256",
              "exported_at": "2026-11-22T18:00:00+08:00", "count": len(records),
              "first_seq": records[0]["seq"], "last_seq": records[-1]["seq"]}
    path = directory / f"pingjia-outbox-{DEVICE_ID}-{records[0]['seq']}-{records[-1]['seq']}.jsonl"
    path.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in [header, *records]),
                    "utf-8")
    return path


def test_import_twice_is_all_duplicate_the_second_time(rx, tmp_path):
    records = make_records(tmp_path / "dev", 1200)
    path = export_file(tmp_path, records)
    first = import_file(rx, path)
    assert (first["accepted"], first["duplicate"], first["rejected"]) == (1200, 0, 0)
    second = import_file(tmp_path / "rx.db", path)
    assert (second["accepted"], second["duplicate"], second["rejected"]) == (0, 1200, 0)
    assert rx.count() == 1200 and rx.chain_report(DEVICE_ID) == [] and rx.stats["accepted"] == 1200


def test_import_reports_an_edited_line(rx, tmp_path):
    records = make_records(tmp_path / "dev", 3)
    records[1] = {**records[1], "level": 1, "score": 0, "tags_missing": True}
    result = import_file(rx, export_file(tmp_path, records))
    assert (result["accepted"], result["rejected"], result["errors"]) == (2, 1, {"bad_hash": 1})
    assert ("bad_hash", 2) in {(e["kind"], e["seq"]) for e in rx.chain_report(DEVICE_ID)}


def test_bad_export_files_change_nothing(rx, tmp_path):
    records = make_records(tmp_path / "dev", 3)
    path = export_file(tmp_path, records)
    lines = path.read_text("utf-8").splitlines()
    cases = {"truncated": lines[:-1], "garbled": lines[:2] + ["{not json"],
             "no header": lines[1:], "empty": []}
    for name, content in cases.items():
        bad = tmp_path / f"{name}.jsonl"
        bad.write_text("\n".join(content), "utf-8")
        with pytest.raises(ReceiverError):
            import_file(rx, bad)
    stranger = tmp_path / "stranger.jsonl"
    stranger.write_text(path.read_text("utf-8").replace(DEVICE_ID, "PJ-STRANGER"), "utf-8")
    with pytest.raises(ReceiverError, match="not known"):
        import_file(rx, stranger)
    assert rx.count() == 0


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
