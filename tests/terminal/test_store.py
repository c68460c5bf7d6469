"""The store: chained, signed, append-only, durable, honest about failures."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlite_utils

from terminal import records as rec
from terminal.store import DB_NAME, SCHEMA_VERSION, StorageError, Store
from tests.terminal.flowkit import Flow, business

SECRET = b"0123456789abcdef0123456789abcdef"
ROOT = Path(__file__).resolve().parents[2]


def drafts(n=1, level=5):
    f = Flow()
    f.invite(*[business(i) for i in range(1, n + 1)])
    f.press(level)
    assert f.records, "levels 1-2 need tags: use 3-5 here"
    return f.records


def open_store(tmp_path, alg="sha256", **kw):
    return Store(tmp_path / DB_NAME, device_id="PJQ-TEST-1", secret=SECRET, hash_alg=alg,
                 boot_id="boot-1", **kw)


def test_append_seals_a_chain(tmp_path):
    with open_store(tmp_path) as s:
        first = s.append(drafts(1))
        more = s.append(drafts(2, level=3))
        assert [r["seq"] for r in first + more] == [1, 2, 3]
        assert first[0]["prev_hash"] == rec.ZERO_HASH
        assert more[0]["prev_hash"] == first[0]["hash"]
        assert more[1]["prev_hash"] == more[0]["hash"]
        assert {r["chain_id"] for r in first + more} == {s.chain_id}
        assert all(r["boot_id"] == "boot-1" and r["device_id"] == "PJQ-TEST-1" for r in first + more)
        assert s.verify() == []
        assert list(s.records()) == first + more


def test_the_row_holds_the_record_once_and_the_columns_agree_with_it(tmp_path):
    """The stored JSON is the whole signed record (every contract field); the columns
    beside it are only those queries use, with the record's values."""
    from terminal.store_schema import COLUMNS

    with open_store(tmp_path) as s:
        [r] = s.append(drafts(1))
    db = sqlite_utils.Database(tmp_path / DB_NAME)
    assert set(db["records"].columns_dict) == {"seq", *COLUMNS}
    row = next(db["records"].rows)
    stored = json.loads(row["json"])
    assert stored == r and set(rec.FIELDS) <= set(stored)
    for name in ("seq",) + COLUMNS[:-1]:
        value = bool(row[name]) if name == "clock_synced" else row[name]
        assert value == r[name], name


def test_hash_is_over_the_canonical_form(tmp_path):
    with open_store(tmp_path) as s:
        [r] = s.append(drafts(1))
    body = {k: v for k, v in r.items() if k not in ("hash", "sig")}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    import hashlib, hmac
    assert r["hash"] == hashlib.sha256(canonical).hexdigest()
    assert r["sig"] == hmac.new(SECRET, r["hash"].encode(), "sha256").hexdigest()


def test_sm3_chain(tmp_path):
    with open_store(tmp_path, alg="sm3") as s:
        recs = s.append(drafts(2))
        assert s.verify() == []
    import hashlib
    assert recs[0]["hash"] == hashlib.new("sm3", rec.canonical(recs[0])).hexdigest()


def test_records_are_append_only(tmp_path):
    with open_store(tmp_path) as s:
        s.append(drafts(2))
        for sql in ("UPDATE records SET level = 1", "DELETE FROM records WHERE seq = 1"):
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                s.db.execute(sql)
        assert s.verify() == []


def test_a_deleted_or_edited_row_is_detectable(tmp_path):
    with open_store(tmp_path) as s:
        s.append(drafts(1, level=5))
        s.append(drafts(1, level=3))
        s.append(drafts(1, level=4))
    db = sqlite3.connect(tmp_path / DB_NAME)
    db.execute("DROP TRIGGER records_no_delete")
    db.execute("DROP TRIGGER records_no_update")
    db.execute("DELETE FROM records WHERE seq = 2")
    db.commit()
    with open_store(tmp_path) as s:
        assert {"seq": 3, "problem": "gap", "expected": 2} in s.verify()
    # an edit of the JSON (what is uploaded) breaks the hash
    row = db.execute("SELECT json FROM records WHERE seq = 3").fetchone()[0]
    edited = json.loads(row)
    edited["level"], edited["score"] = 5, 10
    db.execute("DROP TRIGGER records_no_update")  # the store put it back at start
    db.execute("UPDATE records SET json = ? WHERE seq = 3", [json.dumps(edited)])
    db.commit()
    with open_store(tmp_path) as s:
        problems = {p["problem"] for p in s.verify()}
    assert "bad_hash" in problems


def test_a_forged_record_without_the_secret_fails_the_signature(tmp_path):
    with open_store(tmp_path) as s:
        [r] = s.append(drafts(1))
    forged = dict(r, level=4, score=8)
    forged["hash"] = rec.record_hash(forged, "sha256")
    assert rec.check_record(forged, SECRET, "sha256") == ["bad_signature"]


def test_chain_survives_reopen_and_keeps_its_id(tmp_path):
    with open_store(tmp_path) as s:
        s.append(drafts(1))
        chain = s.chain_id
    with open_store(tmp_path) as s:
        [r] = s.append(drafts(1))
        assert r["seq"] == 2 and r["chain_id"] == chain
        assert s.verify() == []


def test_a_new_store_starts_a_new_chain(tmp_path):
    with open_store(tmp_path / "a") as a, open_store(tmp_path / "b") as b:
        assert a.chain_id != b.chain_id
        assert b.append(drafts(1))[0]["seq"] == 1


def test_hash_algorithm_cannot_change_under_a_chain(tmp_path):
    open_store(tmp_path).close()
    with pytest.raises(StorageError, match="cannot change"):
        open_store(tmp_path, alg="sm3")


def test_schema_is_versioned(tmp_path):
    open_store(tmp_path).close()
    db = sqlite3.connect(tmp_path / DB_NAME)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    with pytest.raises(StorageError, match="newer"):
        open_store(tmp_path)


def test_synchronous_full(tmp_path):
    with open_store(tmp_path) as s:
        assert s.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_disk_full_fails_cleanly_and_keeps_what_was_stored(tmp_path):
    with open_store(tmp_path) as s:
        kept = s.append(drafts(1))
        pages = s.db.execute("PRAGMA page_count").fetchone()[0]
        s.db.execute(f"PRAGMA max_page_count = {pages}")
        with pytest.raises(StorageError, match="full"):
            for _ in range(200):
                s.append(drafts(3))
        s.db.execute("PRAGMA max_page_count = 1000000")
        assert s.verify() == []
        assert list(s.records())[:1] == kept
        after = s.append(drafts(1))
        assert after[0]["seq"] == s.count()
        assert s.verify() == []


def test_visit_lookup_and_pending(tmp_path):
    with open_store(tmp_path) as s:
        recs = s.append(drafts(2))
        assert s.visit("visit-1") == recs
        assert s.visit("nope") == []
        assert s.pending_count() == 2


def test_all_or_nothing_for_a_visit(tmp_path):
    with open_store(tmp_path) as s:
        good = drafts(2)
        bad = [good[0], dict(good[1], surprise=1)]
        with pytest.raises(ValueError):
            s.append(bad)
        assert s.count() == 0
        s.append(good)
        assert s.count() == 2


WRITER = r"""
import sys
from terminal.store import Store
sys.path.insert(0, {root!r})
from tests.terminal.test_store import drafts, SECRET
s = Store({path!r}, device_id="PJQ-TEST-1", secret=SECRET, hash_alg="sha256", boot_id="b")
d = drafts(2)
while True:
    for r in s.append(d):
        print(r["seq"], flush=True)
"""


@pytest.mark.slow
def test_a_killed_process_loses_no_committed_record(tmp_path):
    path = str(tmp_path / DB_NAME)
    code = WRITER.format(root=str(ROOT), path=path)
    for delay in (0.3, 0.5, 0.8):
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, cwd=ROOT,
                                text=True)
        first = proc.stdout.readline()  # started (imports take long on a busy machine)
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        committed = [int(x) for x in (first + out).split()]
        assert committed, "the writer committed nothing before it was killed"
        with open_store(tmp_path) as s:
            seqs = [r["seq"] for r in s.records()]
            assert set(committed) <= set(seqs)
            assert seqs == list(range(1, len(seqs) + 1))
            assert s.verify() == []
            assert s.integrity_check() == "ok"


def test_stored_records_match_the_published_json_schema(tmp_path):
    import jsonschema
    schema = json.loads((ROOT / "terminal" / "record.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    f = Flow()
    f.invite(business(1), business(2))
    f.press(2, 3, 1)  # a bad rating with a tag
    f.invite(business(3), visit_id="v2")
    f.advance(120_000)  # unrated, timeout
    with open_store(tmp_path) as s:
        stored = s.append(f.records)
    assert {r["kind"] for r in stored} == {"rating", "unrated"}
    for r in stored:
        validator.validate(r)
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(dict(stored[0], rater_name="张三"))
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(dict(stored[-1], level=5))


def test_a_dropped_index_is_restored_and_a_lost_records_table_refuses_to_start(tmp_path):
    open_store(tmp_path).close()
    db = sqlite3.connect(tmp_path / DB_NAME)
    db.execute("DROP INDEX idx_records_project_no")   # 一次一评 would go slow, and unchecked
    db.execute("DROP TABLE corrections")
    db.commit()
    with open_store(tmp_path) as s:
        assert sorted(s.restored) == ["index idx_records_project_no", "table corrections"]
        assert s.db.execute("SELECT count(*) FROM sqlite_master WHERE name = "
                            "'idx_records_project_no'").fetchone()[0] == 1
    with open_store(tmp_path) as s:
        assert s.restored == []   # nothing more to do
    db.execute("DROP TABLE delivery")
    db.commit()
    db.close()
    with pytest.raises(StorageError, match="lost its table"):
        open_store(tmp_path)


def test_an_open_visit_is_committed_with_what_it_supersedes_and_ends_with_its_records(tmp_path):
    with open_store(tmp_path) as s:
        first = [dict(d, visit_id="a") for d in drafts(1)]
        s.commit((), [dict(first[0], kind="unrated", unrated_reason="interrupted", level=None,
                           score=None, rated_at=None)])
        assert s.open_visit_ids() == ["a"]
        second = [dict(d, visit_id="b", kind="unrated", unrated_reason="interrupted", level=None,
                       score=None, rated_at=None) for d in drafts(1)]
        [sealed] = s.commit(first, second)   # a's rating, and b opened, in one transaction
        assert sealed["visit_id"] == "a" and s.open_visit_ids() == ["b"]
        left = s.interrupted()
        assert [d["visit_id"] for d in left] == ["b"] and left[0]["boot_id"] == "boot-1"
        bad = [dict(second[0], visit_id="c", task_name="x\udfff")]
        with pytest.raises(StorageError, match="cannot be stored"):
            s.commit(s.interrupted(), bad)
        assert s.open_visit_ids() == ["b"] and s.count() == 1   # all or nothing
