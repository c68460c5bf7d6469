"""`pingjia outbox ...` on a real store, and the USB-stick path: export, import at the
receiver, then the device syncs as well; the receiver holds every record once."""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from agent.receiver import Receiver
from config.edit import set_many
from tests.cli.conftest import DEVICE_ID, ROOT, SECRET, add_records, as_json, pingjia


def test_list_filters_by_status_and_show_prints_the_signed_record(device):
    records = add_records(device, 5, rejected=(2,), delivered=(1,))
    r = device.run("outbox", "list", "--json")
    assert r.returncode == 0, r.stderr
    listing = as_json(r)
    assert listing["totals"] == {"pending": 3, "delivered": 1, "rejected": 1, "parked": 0}
    assert [row["seq"] for row in listing["records"]] == [1, 2, 3, 4, 5]
    pending = as_json(device.run("outbox", "list", "--status", "pending", "--status", "rejected",
                                 "--json"))["records"]
    assert [row["seq"] for row in pending] == [2, 3, 4, 5] and pending[0]["error"] == "bad_field"

    by_id = as_json(device.run("outbox", "show", records[3]["record_id"], "--json"))
    assert by_id["record"] == records[3] and by_id["delivery"]["status"] == "pending"
    missing = device.run("outbox", "show", "99")
    assert missing.returncode == 1 and "no record 99" in missing.stderr


def test_retry_rejected_queues_them_again(device):
    add_records(device, 4, rejected=(1, 3))
    r = device.run("outbox", "retry-rejected", "--json")
    assert r.returncode == 0, r.stderr
    assert as_json(r) == {"requeued": 2, "seqs": [1, 3]}
    assert statuses(device) == {"pending": 4}
    again = device.run("outbox", "retry-rejected")
    assert again.returncode == 0 and "no rejected records" in again.stdout


def test_export_needs_a_directory_and_a_store(device, tmp_path):
    r = device.run("outbox", "export", "--to", tmp_path / "no-such-stick")
    assert r.returncode == 2 and "not a directory" in r.stderr
    r = device.run("outbox", "list")
    assert r.returncode == 1 and "no database" in r.stderr and "Traceback" not in r.stderr


def test_exported_records_imported_at_the_receiver_then_synced_arrive_once(device, tmp_path):
    records = add_records(device, 10)
    stick = tmp_path / "usb"
    stick.mkdir()
    r = device.run("outbox", "export", "--to", stick, "--json")
    assert r.returncode == 0, r.stderr
    exported = as_json(r)
    assert exported["exported"] == 10 and (exported["first_seq"], exported["last_seq"]) == (1, 10)
    path = stick / f"pingjia-outbox-{DEVICE_ID}-1-10.jsonl"
    assert exported["file"] == str(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    header = json.loads(lines[0])
    assert header["format"] == "pingjia-outbox" and header["count"] == 10
    assert [json.loads(line) for line in lines[1:]] == records
    assert not [p for p in stick.iterdir() if p != path]          # no temporary left behind
    records += add_records(device, 3)   # ratings go on while the stick travels

    # the networked machine: the receiver knows the device and imports the file
    receiver_db = tmp_path / "receiver.db"
    r = pingjia("receiver", "import", path, "--db", receiver_db, "--device",
                f"{DEVICE_ID}:{device.secret_file}", "--json")
    assert r.returncode == 0, r.stdout + r.stderr

    # then the device gets a network link and its agent sends everything pending
    with Receiver(receiver_db, devices={DEVICE_ID: {"secret": SECRET}}) as receiver:
        assert receiver.count(DEVICE_ID) == 10
        set_many(device.config, {"central.url": receiver.url})
        agent = subprocess.run([sys.executable, "-m", "agent", "--once", "--config",
                                str(device.config)], cwd=ROOT, capture_output=True, text=True,
                               timeout=60)
        assert agent.returncode == 0, agent.stderr
        stored = receiver.records(DEVICE_ID)
        assert [rec["record_id"] for rec in stored] == [rec["record_id"] for rec in records]
        assert receiver.count(DEVICE_ID) == 13                          # each once
        assert receiver.chain_report(DEVICE_ID) == []
    assert statuses(device) == {"delivered": 13}


def statuses(device) -> dict:
    with sqlite3.connect(device.db) as conn:
        return dict(conn.execute("SELECT status, count(*) FROM delivery GROUP BY status"))


def test_the_printed_import_command_works_as_printed(device, tmp_path):
    """The next step `outbox export` names, pasted into a shell on another directory;
    and an import that fails leaves no receiver database behind."""
    import os
    import shlex

    add_records(device, 3)
    stick = tmp_path / "usb"
    stick.mkdir()
    r = device.run("outbox", "export", "--to", stick)
    assert r.returncode == 0, r.stderr
    (command,) = [line.strip() for line in r.stdout.splitlines() if line.startswith("  ")]
    argv = shlex.split(command)
    assert argv[:3] == ["pingjia", "receiver", "import"] and "--device" in argv
    elsewhere = tmp_path / "networked"
    elsewhere.mkdir()
    path = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    ran = subprocess.run(argv, cwd=elsewhere, capture_output=True, text=True, timeout=60, env=path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "3 accepted" in ran.stdout
    with Receiver(elsewhere / "pingjia-receiver.db") as receiver:
        assert receiver.count(DEVICE_ID) == 3

    stray = tmp_path / "stray"
    stray.mkdir()
    file = argv[3]
    failed = pingjia("receiver", "import", file, "--db", stray / "receiver.db")   # no --device
    assert failed.returncode == 2 and "not known to this receiver" in failed.stderr
    assert list(stray.iterdir()) == []
