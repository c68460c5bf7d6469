"""Import of outbox export files into the receiver (agent/receiver/importer.py): the same
verdicts as an upload, and a bad file changes nothing."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.receiver import import_file
from agent.receiver.db import ReceiverError
from tests.agent.conftest import DEVICE_ID
from tests.agent.receiver.conftest import make_records


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
