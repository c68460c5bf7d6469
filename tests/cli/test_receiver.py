"""`pingjia receiver serve|import|report` as real processes."""
from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.agent.conftest import DEVICE_ID, SECRET, agent_settings_file, fill
from tests.agent.receiver.conftest import Client, make_records

PINGJIA = [sys.executable, "-m", "config.cli"]
ROOT = Path(__file__).resolve().parents[2]


def pingjia(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*PINGJIA, *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, **kw)


@pytest.fixture
def secret_file(tmp_path) -> Path:
    path = tmp_path / "device.secret"
    path.write_bytes(SECRET + b"\n")
    return path


def test_serve_prints_its_url_takes_signed_uploads_and_stops_on_sigterm(tmp_path, secret_file):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "default.json").write_text('{"invite_timeout_s": 30}', "utf-8")
    proc = subprocess.Popen([*PINGJIA, "receiver", "serve", "--db", tmp_path / "rx.db", "--port", "0",
                             "--device", f"{DEVICE_ID}:{secret_file}", "--config-dir", tmp_path / "config"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+", first).group(0)
        assert "not the production central system" in first and "Ctrl-C" in first
        client = Client(url)
        records = make_records(tmp_path / "dev", 4)
        assert [r["status"] for r in client.upload(records).json()["results"]] == ["accepted"] * 4
        assert client.get(f"/v1/devices/{DEVICE_ID}/config").json() == {"invite_timeout_s": 30}
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "4 accepted" in out
    assert SECRET.decode() not in first + out + err


def test_serve_refuses_a_bad_device_entry(tmp_path, secret_file):
    short = tmp_path / "short.secret"
    short.write_bytes(b"abc")
    done = pingjia("receiver", "serve", "--db", tmp_path / "rx.db", "--port", "0",
                   "--device", f"{DEVICE_ID}:{short}")
    assert done.returncode == 2 and "at least 16 bytes" in done.stderr
    missing = pingjia("receiver", "serve", "--db", tmp_path / "rx.db", "--port", "0",
                      "--device", f"{DEVICE_ID}:{tmp_path / 'nope'}")
    assert missing.returncode == 2 and "cannot read the secret file" in missing.stderr
    bad_faults = pingjia("receiver", "serve", "--faults", "2:5xx")
    assert bad_faults.returncode == 2 and "fault rate" in bad_faults.stderr


def test_import_of_a_real_export_twice_then_report(tmp_path, secret_file):
    data = tmp_path / "dev"
    fill(data, 30)
    settings = agent_settings_file(tmp_path, data, "http://127.0.0.1:9")
    usb = tmp_path / "usb"
    usb.mkdir()
    exported = pingjia("--config", settings, "outbox", "export", "--to", usb)
    assert exported.returncode == 0, exported.stderr
    (export,) = usb.glob("pingjia-outbox-*.jsonl")
    db = tmp_path / "rx.db"

    first = pingjia("receiver", "import", export, "--db", db, "--device", f"{DEVICE_ID}:{secret_file}")
    assert first.returncode == 0, first.stderr
    assert "30 accepted, 0 duplicate, 0 rejected" in first.stdout
    second = pingjia("receiver", "import", export, "--db", db, "--json")
    assert second.returncode == 0
    assert json.loads(second.stdout)["totals"] == {"records": 30, "accepted": 0, "duplicate": 30,
                                                   "rejected": 0}

    report = pingjia("receiver", "report", "--db", db)
    assert report.returncode == 0 and f"device {DEVICE_ID}: 30 records" in report.stdout
    assert "chain intact" in report.stdout and SECRET.decode() not in report.stdout
    (device,) = json.loads(pingjia("receiver", "report", "--db", db, "--json").stdout)["devices"]
    assert device["records"] == 30 and device["chain_events"] == []
    assert device["chains"][0]["first_seq"] == 1 and device["chains"][0]["last_seq"] == 30


def test_import_exit_codes_and_report_of_chain_events(tmp_path, secret_file):
    records = make_records(tmp_path / "dev", 6)
    records[2] = {**records[2], "staff_name": "张三"}  # edited after sealing
    del records[4]                                       # deleted
    header = {"format": "pingjia-outbox", "version": 1, "device_id": DEVICE_ID,
              "chain_id": records[0]["chain_id"], "hash_alg": "sha256", "exported_at": "x",
              "count": len(records), "first_seq": 1, "last_seq": 6}
    export = tmp_path / "edited.jsonl"
    export.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in [header, *records]), "utf-8")
    db = tmp_path / "rx.db"
    done = pingjia("receiver", "import", export, "--db", db, "--device", f"{DEVICE_ID}:{secret_file}")
    assert done.returncode == 1
    assert "4 accepted, 0 duplicate, 1 rejected (bad_hash 1)" in done.stdout
    report = pingjia("receiver", "report", "--db", db, "--device", DEVICE_ID)
    assert "bad_hash at seq 3" in report.stdout and "gap at seq 3" in report.stdout
    assert "gap at seq 5" in report.stdout
    unreadable = pingjia("receiver", "import", tmp_path / "nothing.jsonl", "--db", db)
    assert unreadable.returncode == 2 and "cannot read" in unreadable.stderr
    assert pingjia("receiver", "report", "--db", tmp_path / "none.db").returncode == 2
