"""Records deleted or edited in the device database before upload: the receiver sees it.

The tampering is done as someone with shell access would: sqlite3 on the file, dropping
the append-only triggers first. The agent then uploads as usual.
"""
from __future__ import annotations

import json
import sqlite3

from terminal import records as rec
from terminal.store import DB_NAME
from tests.agent.conftest import DEVICE_ID, fill


def tamper(device, *statements):
    with sqlite3.connect(device / DB_NAME) as conn:
        conn.execute("DROP TRIGGER records_no_update")
        conn.execute("DROP TRIGGER records_no_delete")
        for sql, args in statements:
            conn.execute(sql, args)


def stored_json(device, seq: int) -> dict:
    with sqlite3.connect(device / DB_NAME) as conn:
        return json.loads(conn.execute("SELECT json FROM records WHERE seq = ?", [seq]).fetchone()[0])


def kinds(report) -> set:
    return {(e["kind"], e["seq"]) for e in report}


def test_deleted_record_shows_as_a_gap(device, central_rx, make_agent):
    fill(device, 10)
    tamper(device, ("DELETE FROM delivery WHERE seq = 5", []), ("DELETE FROM records WHERE seq = 5", []))
    assert make_agent(central_rx.url).drain()
    assert central_rx.count(DEVICE_ID) == 9
    report = central_rx.chain_report(DEVICE_ID)
    assert [e["kind"] for e in report] == ["gap"] and report[0]["seq"] in (5, 6)


def test_edited_record_shows_as_a_bad_hash(device, central_rx, make_agent):
    fill(device, 10)
    record = stored_json(device, 4)
    record["level"], record["score"] = 5, 10
    record["staff_id"] = "9999"  # someone improves a colleague's figures
    tamper(device, ("UPDATE records SET json = ? WHERE seq = 4",
                    [json.dumps(record, ensure_ascii=False, sort_keys=True, separators=(",", ":"))]))
    agent = make_agent(central_rx.url)
    assert agent.drain()
    assert ("bad_hash", 4) in kinds(central_rx.chain_report(DEVICE_ID))
    assert central_rx.count(DEVICE_ID) == 9
    assert agent.outbox.sync_view()["rejected"] == 1  # parked; the other nine went on


def test_edited_and_rehashed_record_shows_as_a_bad_signature(device, central_rx, make_agent):
    fill(device, 6)
    record = stored_json(device, 3)
    record["level"], record["score"] = 1, 0
    record["tags"] = ["101"]
    record["hash"] = rec.record_hash(record, "sha256")  # the secret is not on hand: old sig stays
    tamper(device, ("UPDATE records SET json = ? WHERE seq = 3",
                    [json.dumps(record, ensure_ascii=False, sort_keys=True, separators=(",", ":"))]))
    assert make_agent(central_rx.url).drain()
    found = kinds(central_rx.chain_report(DEVICE_ID))
    assert ("bad_sig", 3) in found
    assert central_rx.count(DEVICE_ID) == 5


def test_untouched_store_reports_nothing(device, central_rx, make_agent):
    fill(device, 20)
    assert make_agent(central_rx.url).drain()
    assert central_rx.chain_report(DEVICE_ID) == [] and central_rx.count(DEVICE_ID) == 20
