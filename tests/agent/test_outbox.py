"""agent/outbox.py on a real device store (a temporary SQLite file the terminal's Store
made): the batches it reads, the answers it marks, the rows it parks, what it counts."""
from __future__ import annotations

import json
import sqlite3

import pytest

from agent.outbox import Outbox
from terminal.store import DB_NAME, StorageError
from terminal.store_schema import DELIVERY_STATUSES
from tests.agent.conftest import BOOT, DEVICE_ID, drafts, fill, open_store

AT = "2026-11-22T10:00:00+08:00"


@pytest.fixture
def outbox(device):
    box = Outbox(device / DB_NAME, device_id=DEVICE_ID, hash_alg="sha256")
    yield box
    box.close()


def delivery(device) -> dict[int, tuple]:
    with sqlite3.connect(device / DB_NAME) as conn:
        return {r[0]: r[1:] for r in conn.execute(
            "SELECT seq, status, attempts, error, updated_at FROM delivery")}


def test_a_missing_store_or_another_device_is_refused(tmp_path, device):
    with pytest.raises(StorageError, match="no database"):
        Outbox(tmp_path / "none" / DB_NAME, device_id=DEVICE_ID, hash_alg="sha256")
    with pytest.raises(StorageError, match="belong to device"):
        Outbox(device / DB_NAME, device_id="PJQ-OTHER", hash_alg="sha256")
    with pytest.raises(StorageError, match="chained with sha256"):
        Outbox(device / DB_NAME, device_id=DEVICE_ID, hash_alg="sm3")


def test_batches_are_the_oldest_pending_records_as_stored(device, outbox):
    fill(device, 5)
    rows = outbox.next_batch(3)
    assert [r.seq for r in rows] == [1, 2, 3]
    assert [json.loads(r.json)["record_id"] for r in rows] == [r.record_id for r in rows]
    keys, body = outbox.next_raw_batch(3, '{"records":[', "]}")
    assert [(k.seq, k.record_id) for k in keys] == [(r.seq, r.record_id) for r in rows]
    assert [json.loads(r.json) for r in rows] == json.loads(body)["records"]
    assert outbox.pending_keys(10) == [(k.seq, k.record_id) for k in outbox.next_raw_batch(10, "", "")[0]]
    assert outbox.next_raw_batch(3, "[", "]")[1].startswith(b"[{")


def test_an_empty_queue_reads_nothing(outbox):
    assert outbox.next_batch(10) == []
    assert outbox.next_raw_batch(10, "[", "]") == ([], b"")
    assert outbox.pending_keys(10) == []


def test_answers_are_marked_in_one_go_and_the_next_batch_goes_on(device, outbox):
    fill(device, 4)
    outbox.mark([(1, "delivered", None), (2, "rejected", "invalid_record"), (3, "delivered", None)],
                tries=2, at=AT)
    state = delivery(device)
    assert state[1] == ("delivered", 2, None, AT) and state[3] == ("delivered", 2, None, AT)
    assert state[2] == ("rejected", 2, "invalid_record", AT)
    assert state.get(4, ("pending", 0, None, None)) == ("pending", 0, None, None)  # (or still in the tail)
    assert [r.seq for r in outbox.next_batch(10)] == [4]
    assert delivery(device)[4] == ("pending", 0, None, None)  # adopted for its batch
    view = outbox.sync_view()
    assert view["queue_depth"] == 1 and view["rejected"] == 1 and view["last_upload_at"] == AT


def test_parked_rows_are_set_aside_with_their_reason(device, outbox):
    fill(device, 3)
    outbox.park([(2, "x" * 600)], AT)
    assert delivery(device)[2] == ("parked", 0, "x" * 500, AT)
    assert [r.seq for r in outbox.next_batch(10)] == [1, 3]
    outbox.mark([(1, "delivered", None)], 1, AT)
    outbox.park([(1, "late")], AT)  # only a pending row is parked
    assert delivery(device)[1][0] == "delivered"
    assert outbox.sync_view()["parked"] == 1


def test_stored_json_is_the_signed_record(device, outbox):
    fill(device, 1)
    with open_store(device) as s:
        record = next(s.records())
    assert json.loads(outbox.stored_json(1)) == record
    with pytest.raises(sqlite3.DatabaseError):
        outbox.stored_json(99)


def test_totals_count_every_delivery_status_and_kind(device, outbox):
    with open_store(device) as s:
        s.append(drafts(3) + drafts(1, start=4, level=None))
    outbox.mark([(1, "delivered", None), (2, "rejected", "no")], 1, AT)
    outbox.park([(3, "damaged")], AT)
    totals = outbox.totals()
    assert {s: totals[s] for s in DELIVERY_STATUSES} == {
        "pending": 1, "delivered": 1, "rejected": 1, "parked": 1}
    assert sorted(totals["ratings"], key=str) == sorted([("rating", 5, 3), ("unrated", None, 1)], key=str)


def test_corrections_are_offered_once_for_this_boots_delivered_unsynced_records(device, outbox):
    with open_store(device) as s:
        s.append(drafts(3, synced=False))
    with open_store(device, boot_id="boot-B") as s:
        s.append(drafts(1, start=4, synced=False))
    assert outbox.correction_candidates(BOOT, 10) == []  # not delivered yet
    outbox.mark([(1, "delivered", None), (2, "delivered", None)], 1, AT)
    candidates = outbox.correction_candidates(BOOT, 10)
    assert [c.seq for c in candidates] == [1, 2] and candidates[0].kind == "rating"
    assert outbox.uncorrectable(BOOT) == 1 and outbox.uncorrectable("boot-B") == 3
    outbox.mark_corrections([(1, AT, AT, "ntp", "delivered", None)], AT)
    assert [c.seq for c in outbox.correction_candidates(BOOT, 10)] == [2]


def test_the_central_config_is_kept_with_its_etag(outbox):
    assert outbox.central_config() is None
    outbox.save_central_config('"v1"', json.dumps({"a": 1}), AT)
    outbox.save_central_config('"v2"', json.dumps({"a": 2}), AT)
    assert outbox.central_config() == ('"v2"', {"a": 2})


def test_a_schema_repair_at_start_is_reported(device):
    with sqlite3.connect(device / DB_NAME) as conn:
        conn.execute("DROP TRIGGER records_no_delete")
    open_store(device).close()  # the terminal restores it at start
    box = Outbox(device / DB_NAME, device_id=DEVICE_ID, hash_alg="sha256")
    try:
        assert box.schema_repair()["restored"] == ["trigger records_no_delete"]
    finally:
        box.close()
