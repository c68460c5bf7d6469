"""A bad row is parked, not a wall: a stored row whose JSON was truncated or mangled (the
append-only trigger dropped first, as an attacker would) is set aside on the device, the
rows behind it reach the real reference receiver, and `pingjia status` and `pingjia
outbox list` show it. The heartbeat reports it, and a schema repair at start."""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from terminal.store import DB_NAME
from tests.agent.conftest import DEVICE_ID, agent_settings_file, drafts, open_store

ROOT = Path(__file__).resolve().parents[2]


def spoil(data_dir: Path, seq: int, sql_value: str) -> None:
    db = sqlite3.connect(data_dir / DB_NAME)
    db.execute("DROP TRIGGER IF EXISTS records_no_update")
    db.execute(f"UPDATE records SET json = {sql_value} WHERE seq = ?", [seq])
    db.commit()
    db.close()


def pingjia(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "config.cli", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_unreadable_rows_are_parked_and_the_rows_behind_them_delivered(
        tmp_path, device, central_rx, make_agent):
    with open_store(device) as s:
        s.append(drafts(6))
    spoil(device, 2, "substr(json, 1, 40)")                 # truncated
    spoil(device, 4, "CAST(X'7B22736571223A34FF7D' AS TEXT)")  # not UTF-8
    agent = make_agent(central_rx.url, batch_size=10)
    assert agent.drain()
    assert sorted(r["seq"] for r in central_rx.records(DEVICE_ID)) == [1, 3, 5, 6]
    assert agent.stats["parked"] == 2
    view = agent.outbox.sync_view()
    assert view["queue_depth"] == 0 and view["parked"] == 2 and view["rejected"] == 0
    assert agent.run_once() == 3  # nothing pending, but a technician must look

    settings = agent_settings_file(tmp_path, device, central_rx.url)
    listed = pingjia("--config", settings, "outbox", "list", "--status", "parked", "--json")
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    assert [(r["seq"], r["status"]) for r in data["records"]] == [(2, "parked"), (4, "parked")]
    assert "not valid" in data["records"][0]["error"] and "UTF-8" in data["records"][1]["error"]
    assert data["totals"]["parked"] == 2
    status = pingjia("--config", settings, "status", "--json")
    assert json.loads(status.stdout)["parked"] == 2, status.stdout + status.stderr
    text = pingjia("--config", settings, "status")
    assert "2 stored row(s) unreadable" in text.stdout


def test_the_heartbeat_reports_parked_rows_and_a_schema_repair(device, central_rx, make_agent):
    with open_store(device) as s:
        s.append(drafts(2))
    spoil(device, 1, "'{'")
    db = sqlite3.connect(device / DB_NAME)
    db.execute("DROP TRIGGER records_no_delete")
    db.commit()
    db.close()
    open_store(device).close()   # the terminal starts: it puts the trigger back
    agent = make_agent(central_rx.url)
    assert agent.drain() and agent.heartbeat()
    beat = central_rx.heartbeats(DEVICE_ID)[-1]
    beat = beat.get("summary", beat)
    assert beat["parked"] == 1
    assert sorted(beat["schema_restored"]["restored"]) == ["trigger records_no_delete",
                                                          "trigger records_no_update"]


def test_an_interrupted_record_is_accepted_by_the_receiver(device, central_rx, make_agent):
    with open_store(device) as s:
        s.append(drafts(1, level=None, reason="interrupted"))
    agent = make_agent(central_rx.url)
    assert agent.drain()
    [got] = central_rx.records(DEVICE_ID)
    assert got["unrated_reason"] == "interrupted"
    assert agent.outbox.sync_view()["rejected"] == 0


def test_a_row_on_a_damaged_page_is_parked_and_the_rest_delivered(device, central_rx, make_agent):
    marker = "损坏页" * 3000   # the record's text runs over several overflow pages
    with open_store(device) as s:
        s.append(drafts(1))
        s.append([dict(drafts(1, start=2)[0], task_name=marker)])
        s.append(drafts(1, start=3))
        s.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    path = device / DB_NAME
    data = bytearray(path.read_bytes())
    needle = ("损坏页" * 20).encode("utf-8")  # (shorter than a page)
    page = int.from_bytes(data[16:18], "big")  # the store's page size (file header)
    hits = sorted({data.index(needle, start) // page for start in range(0, len(data), page)
                   if needle in data[start:start + page + len(needle)]})
    overflow = [p for p in hits if data[p * page] not in (2, 5, 10, 13)]  # not b-tree pages
    assert len(overflow) >= 3, hits
    for p in overflow:   # break the overflow chain: each page's pointer to the next
        data[p * page:p * page + 4] = (0xFFFFFFF0).to_bytes(4, "big")
    path.write_bytes(bytes(data))
    agent = make_agent(central_rx.url, batch_size=10)
    assert agent.drain()
    assert sorted(r["seq"] for r in central_rx.records(DEVICE_ID)) == [1, 3]
    view = agent.outbox.sync_view()
    assert view["parked"] == 1 and view["queue_depth"] == 0
