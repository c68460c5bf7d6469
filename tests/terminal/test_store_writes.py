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
        assert s.db.execute("PRAGMA page_size").fetchone()[0] == store.PAGE_SIZE == 512
        s.commit(drafts(1))  # the tables' first pages exist
        s.db.conn.execute("PRAGMA wal_autocheckpoint = 0")
        s.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        opened = [dict(d, kind="unrated", unrated_reason="interrupted", level=None, score=None,
                       rated_at=None, visit_id="v-1") for d in drafts(1)]
        s.commit((), opened)
        # the open visit's row (its leaf, and two overflow pages for the drafts' 1 KiB) and
        # the header: no key index
        assert wal_frames(tmp_path / DB_NAME, 512) <= 4
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


def test_a_store_of_schema_4_is_copied_into_the_light_table_once(tmp_path):
    """Records of a schema-4 store (every field a column) move into the schema-5 table
    (the JSON and the queried columns) in one transaction: chain intact, delivery rows
    kept with their kind and level, still append-only."""
    import json

    from terminal import records as rec
    from terminal import store_schema, sync_state

    with open_store(tmp_path / "a") as a:
        made = a.append(drafts(3))
        meta = store.meta(a.db)
    path = tmp_path / "b" / DB_NAME
    path.parent.mkdir()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("BEGIN")
    for target in range(1, 5):
        store_schema.MIGRATIONS[target](conn)
    conn.execute("PRAGMA user_version = 4")
    conn.executemany("INSERT INTO meta VALUES (?, ?)", sorted(meta.items()))
    names = rec.FIELDS + ("json",)
    for r in made:  # the schema-4 row: every field a column, and the JSON
        values = [json.dumps(r[n], ensure_ascii=False) if n == "tags" else
                  int(r[n]) if isinstance(r[n], bool) else r[n] for n in rec.FIELDS]
        values.append(json.dumps(r, ensure_ascii=False, sort_keys=True, separators=(",", ":")))
        conn.execute(f"INSERT INTO records ({', '.join(names)}) VALUES "
                     f"({', '.join('?' for _ in names)})", values)
        conn.execute("INSERT INTO delivery (seq, status, attempts) VALUES (?, ?, 1)",
                     [r["seq"], "delivered" if r["seq"] == 1 else "pending"])
    conn.execute("COMMIT")
    conn.close()
    with Store(path, device_id="PJQ-TEST-1", secret=SECRET, hash_alg="sha256", boot_id="boot-2") as s:
        assert s.db.execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION
        assert list(s.records()) == made and s.verify() == []
        columns = [r[1] for r in s.db.execute("PRAGMA table_info(records)")]
        assert columns == ["seq", *store_schema.COLUMNS]
        assert s.db.execute("SELECT seq, status, kind, level FROM delivery ORDER BY seq").fetchall() == [
            (r["seq"], "delivered" if r["seq"] == 1 else "pending", r["kind"], r["level"])
            for r in made]
        assert sync_state.pending_count(s.db) == 2 and s.restored == []
        more = s.append(drafts(1))
        assert more[0]["prev_hash"] == made[-1]["hash"] and s.verify() == []
        try:
            s.db.execute("UPDATE records SET level = 1")
            raise AssertionError("records took an update")
        except sqlite3.IntegrityError as exc:
            assert "append-only" in str(exc)
        assert s.db.execute("PRAGMA foreign_key_check").fetchall() == []


def test_an_ended_visit_is_not_interrupted_though_its_row_stays_until_the_next_one(tmp_path):
    """The rating's commit leaves the open visit's row (one page less per rating); a
    visit with records is over, so a restart seals nothing for it, and the next
    invitation's commit takes the old row away."""
    unrated = [dict(d, kind="unrated", unrated_reason="interrupted", level=None, score=None,
                    rated_at=None) for d in drafts(1)]
    with open_store(tmp_path) as s:
        s.commit((), [dict(unrated[0], visit_id="v-1")])
        s.commit([dict(drafts(1)[0], visit_id="v-1")])
        assert s.db.execute("SELECT visit_id FROM open_visits").fetchall() == [("v-1",)]
        assert s.open_visit_ids() == [] and s.interrupted() == []
    with Store(tmp_path / DB_NAME, device_id="PJQ-TEST-1", secret=SECRET, hash_alg="sha256",
               boot_id="boot-2") as s:
        assert s.interrupted() == []  # after a restart too: nothing sealed twice
        s.commit((), [dict(unrated[0], visit_id="v-2")])
        assert s.db.execute("SELECT visit_id FROM open_visits").fetchall() == [("v-2",)]
        assert [d["visit_id"] for d in s.interrupted()] == ["v-2"]


def test_the_wal_file_is_reused_after_a_checkpoint_not_cut_and_grown_again():
    """A WAL at the checkpoint mark stays under the size limit (a file that grows makes
    every commit journal its new size)."""
    wal_at_mark = 32 + store.WAL_AUTOCHECKPOINT_PAGES * (store.PAGE_SIZE + 24)
    assert wal_at_mark < store.JOURNAL_SIZE_LIMIT
