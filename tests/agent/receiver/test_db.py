"""The receiver's store (agent/receiver/db.py) through uploads: the verdict on each record
(accepted, duplicate, conflict, rejected with a reason), corrections beside the signed
records, heartbeats."""
from __future__ import annotations

from terminal import records as rec
from tests.agent.conftest import DEVICE_ID, SECRET
from tests.agent.receiver.conftest import OTHER_ID, OTHER_SECRET, Client, make_records, resealed, statuses


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


def test_bad_records_are_rejected_with_a_reason_and_block_nothing(rx, client, tmp_path):
    good = make_records(tmp_path / "dev", 7)
    batch = [
        good[0],
        {**good[1], "level": 1, "score": 0},                      # edited: hash no longer fits
        {**good[2], "hash": rec.record_hash({**good[2], "level": 4, "score": 8}, "sha256"),
         "level": 4, "score": 8},                                 # hash redone, not the sig
        resealed(good[3], level=5, score=8),                        # breaks a rule
        resealed(good[4], level=9, score=10),                       # breaks the schema
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
