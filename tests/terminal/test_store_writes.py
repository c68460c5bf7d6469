"""What the store costs the SD card: small pages for a new file, a small open-visit row."""
import sqlite3

from terminal import store
from terminal.store import DB_NAME, Store
from tests.terminal.test_store import SECRET, drafts, open_store


def wal_frames(path, page: int) -> int:
    wal = path.with_name(path.name + "-wal")
    return (wal.stat().st_size - 32) // (page + 24) if wal.exists() else 0


def test_a_new_store_has_small_pages_and_an_open_visit_writes_one_page(tmp_path):
    with open_store(tmp_path) as s:
        assert s.db.execute("PRAGMA page_size").fetchone()[0] == store.PAGE_SIZE == 1024
        s.commit(drafts(1))  # the tables' first pages exist
        s.db.conn.execute("PRAGMA wal_autocheckpoint = 0")
        s.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        opened = [dict(d, kind="unrated", unrated_reason="interrupted", level=None, score=None,
                       rated_at=None, visit_id="v-1") for d in drafts(1)]
        s.commit((), opened)
        # the open visit's row alone: no key index, no overflow page, no freelist change
        assert wal_frames(tmp_path / DB_NAME, 1024) == 1
        assert s.open_visit_ids() == ["v-1"]
        s.commit((), opened)  # the same visit again (a retried invitation): still one row
        assert s.open_visit_ids() == ["v-1"]


def test_a_store_of_schema_3_keeps_its_open_visit_and_page_size(tmp_path):
    path = tmp_path / DB_NAME
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")  # made with SQLite's own 4 KiB pages
    conn.close()
    migrations, version = dict(store.MIGRATIONS), store.SCHEMA_VERSION
    try:
        store.MIGRATIONS.pop(4)
        store.SCHEMA_VERSION = 3
        with open_store(tmp_path) as s:
            s.commit((), [dict(drafts(1)[0], kind="unrated", unrated_reason="interrupted",
                               level=None, score=None, rated_at=None, visit_id="left-open")])
    finally:
        store.MIGRATIONS.clear()
        store.MIGRATIONS.update(migrations)
        store.SCHEMA_VERSION = version
    with Store(path, device_id="PJQ-TEST-1", secret=SECRET, hash_alg="sha256", boot_id="boot-2") as s:
        assert s.db.execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION
        assert s.db.execute("PRAGMA page_size").fetchone()[0] == 4096
        assert [d["visit_id"] for d in s.interrupted()] == ["left-open"]
        assert s.restored == []  # the migrated schema is the one the migrations make
