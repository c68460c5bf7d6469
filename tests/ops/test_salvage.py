"""The start-up integrity check and the salvage of a damaged database (terminal/salvage.py).

Real SQLite files damaged the ways SD cards damage them: pages of garbage in the middle,
a file cut short, a mangled header. The damaged file must be set aside byte for byte,
every readable record must come back with its seq, hash and signature, the chain must
go on, and a salvage killed at any moment must finish on the next start.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from terminal import records as rec
from terminal.salvage import BUILDING, DAMAGED, READING, ensure_intact, integrity_problems, last_salvage
from terminal.store import DB_NAME, Reader, Store
from tests.ops.conftest import DEVICE_ID, ROOT, SECRET, get_status, make_store, sim_config, start_terminal, stop

TOTAL = 600
DELIVERED = 200
PAGE = 4096


@pytest.fixture(scope="module")
def healthy(tmp_path_factory) -> tuple[Path, str, dict]:
    """A checkpointed database: TOTAL records, the first DELIVERED delivered.
    Returns (data dir, chain id, records by seq)."""
    data = tmp_path_factory.mktemp("healthy")
    chain_id = make_store(data, TOTAL, delivered=DELIVERED, batch=50)
    with Reader(data / DB_NAME) as r:
        records = {x["seq"]: x for x in r.records()}
    assert len(records) == TOTAL
    return data, chain_id, records


def copy_of(healthy, tmp_path: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(healthy[0], data)
    return data / DB_NAME


def damage(path: Path, kind: str) -> bytes:
    """Damage the file as a failing card would; returns the damaged bytes."""
    data = bytearray(path.read_bytes())
    pages = len(data) // PAGE
    if kind == "middle":  # two pages of garbage halfway through
        rnd = __import__("random").Random(7)
        for page in (pages // 2, pages // 2 + 1):
            data[page * PAGE:(page + 1) * PAGE] = bytes(rnd.getrandbits(8) for _ in range(PAGE))
    elif kind == "truncated":  # the last writes never reached the card
        del data[(pages // 2) * PAGE + 1000:]
    elif kind == "header":  # the first sector overwritten
        data[:100] = bytes((i * 37 + 11) % 256 for i in range(100))
    else:
        raise ValueError(kind)
    path.write_bytes(bytes(data))
    return bytes(data)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def files_with(directory: Path, digest: str) -> list[Path]:
    return [p for p in directory.iterdir() if p.is_file() and sha(p.read_bytes()) == digest]


def salvaged_records(path: Path) -> dict:
    with Reader(path) as r:
        return {x["seq"]: x for x in r.records()}


def delivery(path: Path) -> dict:
    with Reader(path) as r:
        return dict(r.db.execute("SELECT seq, status FROM delivery").fetchall())


def runs(seqs) -> list[list[int]]:
    out: list[list[int]] = []
    for s in sorted(seqs):
        if out and out[-1][-1] == s - 1:
            out[-1].append(s)
        else:
            out.append([s])
    return out


# the least each kind of damage must give back (the header loses nothing: it is rebuilt)
AT_LEAST = {"middle": TOTAL - 20, "truncated": TOTAL // 4, "header": TOTAL}


@pytest.mark.parametrize("kind", ["middle", "truncated", "header"])
def test_damaged_database_is_set_aside_and_its_records_salvaged(healthy, tmp_path, kind, caplog):
    _, chain_id, original = healthy
    path = copy_of(healthy, tmp_path)
    damaged_bytes = damage(path, kind)
    assert integrity_problems(path), "the damage should be visible to the check"

    with caplog.at_level(logging.ERROR, logger="pingjia.terminal"):
        result = ensure_intact(path, hash_alg="sha256")

    assert result is not None
    # set aside, byte for byte, under the reported name; never deleted
    aside = Path(result.damaged_file)
    assert aside.parent == path.parent and aside.name.startswith(DB_NAME + DAMAGED)
    assert sha(aside.read_bytes()) == sha(damaged_bytes)
    assert not path.with_name(path.name + BUILDING).exists()
    assert not path.with_name(path.name + READING).exists()

    # the fresh database is sound, and what it holds is exactly what was stored
    assert integrity_problems(path) == []
    got = salvaged_records(path)
    assert len(got) >= AT_LEAST[kind]
    assert result.salvaged == len(got)
    for seq, record in got.items():
        assert record == original[seq]
        assert rec.check_record(record, SECRET, "sha256") == []
    # the chain holds within every run of surviving records, and the gaps are reported
    for run in runs(got):
        first = run[0]
        start_prev = rec.ZERO_HASH if first == 1 else original[first - 1]["hash"]
        assert rec.verify_chain([got[s] for s in run], SECRET, "sha256", first, start_prev) == []
    lost = set(range(1, TOTAL + 1)) - set(got)
    assert result.lost == len(lost) or (kind == "truncated" and result.lost <= len(lost))
    if kind == "header":
        assert lost == set()
    assert result.chain_id == chain_id

    # nothing undelivered became delivered; every salvaged record has a delivery row
    status = delivery(path)
    assert set(status) == set(got)
    assert all(status[s] == "pending" for s in got if s > DELIVERED)
    assert result.pending == sum(1 for s in got if status[s] == "pending")
    assert result.pending >= sum(1 for s in got if s > DELIVERED)

    # the event is reported: in the log, and in the database for GET /v1/status
    assert any("set aside" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)
    assert last_salvage(path) == result.as_dict()

    # the store goes on with the same chain, after the highest seq
    store = Store(path, device_id=DEVICE_ID, secret=SECRET, hash_alg="sha256", boot_id="boot-2")
    try:
        assert store.chain_id == chain_id
        from tests.ops.conftest import drafts
        new = store.append(drafts(1))[0]
        assert new["seq"] == max(got) + 1 and new["prev_hash"] == got[max(got)]["hash"]
    finally:
        store.close()
    # and the next start finds nothing to do
    assert ensure_intact(path, hash_alg="sha256") is None


def test_a_healthy_database_is_left_untouched(healthy, tmp_path):
    path = copy_of(healthy, tmp_path)
    before = {p.name: (p.stat().st_mtime_ns, sha(p.read_bytes())) for p in path.parent.iterdir()}
    assert ensure_intact(path, hash_alg="sha256") is None
    after = {p.name: (p.stat().st_mtime_ns, sha(p.read_bytes())) for p in path.parent.iterdir()}
    # any reader of a WAL database gets an (empty) -wal and an -shm beside it; the
    # database itself is neither written nor moved
    sqlite_own = {DB_NAME + "-wal", DB_NAME + "-shm"}
    assert {k: v for k, v in after.items() if k not in sqlite_own} == before
    assert all(after[n][1] == sha(b"") for n in after if n.endswith("-wal"))
    assert last_salvage(path) is None


def test_no_database_yet_is_not_damage(tmp_path):
    assert ensure_intact(tmp_path / DB_NAME, hash_alg="sha256") is None
    assert list(tmp_path.iterdir()) == []


def test_an_unreadable_file_is_not_taken_for_damage(healthy, tmp_path):
    """Permission denied says nothing about the file: it must not be set aside."""
    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    path = copy_of(healthy, tmp_path)
    path.chmod(0)
    try:
        from terminal.store import StorageError
        with pytest.raises(StorageError):
            ensure_intact(path, hash_alg="sha256")
        assert sorted(p.name for p in path.parent.iterdir()) == [DB_NAME]
    finally:
        path.chmod(0o600)


def test_nothing_readable_starts_a_new_chain_and_keeps_the_file(tmp_path):
    path = tmp_path / DB_NAME
    garbage = bytes((i * 131 + 7) % 251 for i in range(8 * PAGE))
    path.write_bytes(garbage)
    result = ensure_intact(path, hash_alg="sha256")
    assert result is not None and result.salvaged == 0 and result.chain_id is None
    assert files_with(tmp_path, sha(garbage)) == [Path(result.damaged_file)]
    store = Store(path, device_id=DEVICE_ID, secret=SECRET, hash_alg="sha256", boot_id="b")
    try:
        assert store.count() == 0 and store.chain_id
    finally:
        store.close()


# --- a salvage killed part-way ------------------------------------------------------

_CRASHING_SALVAGE = """
import os, signal, sys
sys.path.insert(0, {root!r})
hook, at = sys.argv[2], int(sys.argv[3])
calls = [0]
def crashing(real):
    def call(*args, **kwargs):
        if calls[0] == at:
            os.kill(os.getpid(), signal.SIGKILL)  # the power goes, here
        calls[0] += 1
        return real(*args, **kwargs)
    return call
if hook != "none":
    setattr(os, hook, crashing(getattr(os, hook)))
from terminal.salvage import ensure_intact
ensure_intact(sys.argv[1], hash_alg="sha256")
"""


def run_salvage(path: Path, hook: str, at: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _CRASHING_SALVAGE.format(root=str(ROOT)),
                             str(path), hook, str(at)], cwd=ROOT, stderr=subprocess.PIPE, text=True)


def check_resumed(path: Path, damaged_bytes: bytes, expected: dict) -> None:
    """After a crash and one more start: one sound database with exactly the records a
    clean salvage gives, the damaged bytes kept aside, no half-built leftovers."""
    ensure_intact(path, hash_alg="sha256")
    assert integrity_problems(path) == []
    assert salvaged_records(path) == expected
    aside = files_with(path.parent, sha(damaged_bytes))
    assert aside and all(p.name.startswith(DB_NAME + DAMAGED) for p in aside)
    names = [p.name for p in path.parent.iterdir()]
    assert not [n for n in names if n.endswith((BUILDING, READING))], names
    assert last_salvage(path) is not None
    assert ensure_intact(path, hash_alg="sha256") is None


@pytest.fixture(scope="module")
def clean_salvage(healthy, tmp_path_factory) -> dict:
    """What an uninterrupted salvage of the 'middle' damage gives back."""
    path = copy_of(healthy, tmp_path_factory.mktemp("clean"))
    damage(path, "middle")
    ensure_intact(path, hash_alg="sha256")
    return salvaged_records(path)


# os.fsync #0: the fresh copy is complete, nothing renamed yet; os.replace #0: the damaged
# file not yet set aside; #1: set aside, the fresh copy not yet in its place
@pytest.mark.slow
@pytest.mark.parametrize("hook,at", [("fsync", 0), ("replace", 0), ("replace", 1), ("fsync", 1)])
def test_a_salvage_killed_at_each_step_finishes_on_the_next_start(healthy, clean_salvage, tmp_path,
                                                                 hook, at):
    path = copy_of(healthy, tmp_path)
    damaged_bytes = damage(path, "middle")
    proc = run_salvage(path, hook, at)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, err
    check_resumed(path, damaged_bytes, clean_salvage)


@pytest.mark.slow
def test_a_salvage_killed_while_building_the_copy_starts_over(healthy, clean_salvage, tmp_path):
    """Killed from outside as soon as the fresh copy appears (mid-build, or a little later:
    whatever moment it hits, the next start must end in the same place)."""
    path = copy_of(healthy, tmp_path)
    damaged_bytes = damage(path, "middle")
    building = path.with_name(path.name + BUILDING)
    proc = run_salvage(path, "none", 0)
    end = time.monotonic() + 30
    while not building.exists() and proc.poll() is None and time.monotonic() < end:
        time.sleep(0.0005)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    check_resumed(path, damaged_bytes, clean_salvage)


@pytest.mark.slow
def test_the_terminal_reports_a_salvage_at_start(healthy, tmp_path, notify):
    """`pingjia terminal` on a damaged database: it starts, says so in its systemd status
    and in GET /v1/status, and serves on the salvaged records."""
    config = sim_config(tmp_path)
    data = tmp_path / "data"
    shutil.rmtree(data)
    shutil.copytree(healthy[0], data)
    damage(data / DB_NAME, "middle")
    proc = start_terminal(config, notify.env())
    try:
        ready = notify.wait_for("READY=1")
        assert "database damaged" in ready and "set aside" in ready
        # before READY: a longer start asked for, while the database was checked
        extend = notify.wait_for("STATUS=starting: checking the database")
        assert extend.split("\n")[0].startswith("EXTEND_TIMEOUT_USEC=")
        assert notify.received.index(extend) < notify.received.index(ready)
        status = get_status(config)
        assert status["salvage"]["salvaged"] >= AT_LEAST["middle"]
        assert status["salvage"]["chain_id"] == healthy[1]
        assert status["queue_depth"] == status["salvage"]["pending"] >= TOTAL - DELIVERED - 20
        assert Path(status["salvage"]["damaged_file"]).exists()
    finally:
        code, err = stop(proc)
    assert code == 0, err
    assert "set aside" in err  # logged at ERROR on the journal


def test_a_long_salvage_reports_progress(healthy, tmp_path, monkeypatch):
    """What lets the service ask systemd for more time while a large database is salvaged."""
    from terminal import salvage
    monkeypatch.setattr(salvage, "PROGRESS_EVERY", 100)  # 600 records: several reports
    path = copy_of(healthy, tmp_path)
    damage(path, "middle")
    heard: list[str] = []
    result = ensure_intact(path, hash_alg="sha256", progress=heard.append)
    assert heard[0] == "checking the database"
    assert any("records read" in h for h in heard)
    copied = [h for h in heard if "copied" in h]
    assert len(copied) == result.salvaged // 100


def test_an_invitation_open_in_a_damaged_database_still_ends_as_records(tmp_path):
    from tests.ops.conftest import drafts
    data = tmp_path / "data"
    make_store(data, 40)
    store = Store(data / DB_NAME, device_id=DEVICE_ID, secret=SECRET, hash_alg="sha256",
                  boot_id="boot-1")
    opened = [dict(d, kind="unrated", unrated_reason="interrupted", level=None, score=None,
                   rated_at=None, visit_id="open-1") for d in drafts(2)]
    store.commit((), opened)
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    damage(data / DB_NAME, "header")
    report = ensure_intact(data / DB_NAME, hash_alg="sha256")
    assert report is not None and report.salvaged == 40
    store = Store(data / DB_NAME, device_id=DEVICE_ID, secret=SECRET, hash_alg="sha256",
                  boot_id="boot-2")
    try:
        assert [d["visit_id"] for d in store.interrupted()] == ["open-1", "open-1"]
        assert {d["boot_id"] for d in store.interrupted()} == {"boot-1"}
    finally:
        store.close()
