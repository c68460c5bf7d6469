"""The SQLite store: append-only, chained, signed records, and their delivery state.

One file shared by the terminal (which appends) and the agent (which marks delivery).
WAL mode with synchronous=FULL: a commit is on disk when `append` returns, which is
what lets the screen thank the person. The signed content of a record never changes
after insert; triggers refuse UPDATE and DELETE on the records table, so a technician
with `sqlite-utils` cannot edit a record by accident (an attacker who drops the
triggers still breaks the hash chain, which the central system sees).

This module holds the connection (its PRAGMAs), the transactions and the write path
(sealing, the open visits). The SQL of the device database lives beside it, by
concern: the schema and its migrations in terminal/store_schema.py, the delivery and
sync state the agent and `pingjia outbox` use in terminal/sync_state.py, and the
rescue of a damaged file in terminal/salvage.py.
"""
from __future__ import annotations

import json
import logging
import sqlite3
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

from terminal import records as rec
from terminal import sync_state
from terminal.store_schema import (COLUMNS, MIGRATIONS, REBUILDS, SCHEMA_REPAIR_KEY, SCHEMA_VERSION,
                                    missing_parts, schema_version)

# Plain sqlite3 only: the terminal service and the sync agent both use this module, and
# sqlite_utils (which made the first schema) costs a process 4 MiB and 30 ms at start.

log = logging.getLogger("pingjia.terminal")

DB_NAME = "pingjia.db"
BUSY_TIMEOUT_MS = 10_000
# SD cards wear by the bytes written. A commit writes each page it touches into the WAL
# whole (a rating touches about ten: the row's leaf and overflow pages, three indexes,
# the header; an invitation the open visit), so small pages write less per rating:
# SQLite's smallest, 512 bytes, instead of its 4 KiB (make bench: 14 KiB per rating at
# 512, 16 at 1 KiB). Only a new database takes it; an older one keeps its page size
# until it is rebuilt.
PAGE_SIZE = 512
# The WAL is checkpointed into the database every this many pages: 4 MiB of 512-byte
# pages, what SQLite's default (1000 pages) is at 4 KiB. A checkpoint runs inside the
# commit that crosses the mark (a rating then takes a few ms more), and it copies each
# page once however often it changed, so fewer checkpoints also write less. After one,
# the next commits write the WAL from its start again: JOURNAL_SIZE_LIMIT is above the
# file's size at the mark, so the file is reused, not cut and grown again (a commit that
# grows a file also makes the file system journal its new size).
WAL_AUTOCHECKPOINT_PAGES = 8000
JOURNAL_SIZE_LIMIT = 8 << 20
CACHE_KIB = 512  # page cache per connection (SQLite's default: 2000 KiB)

class StorageError(Exception):
    """The store could not take a record (disk full, I/O error, corrupt file)."""


def open_connection(path: str | Path, page_size: int | None = None, *,
                    synchronous: str = "FULL") -> sqlite3.Connection:
    """A plain connection with the store's settings (autocommit; transactions are explicit).
    `page_size`: for a file this connection creates (the device's store: PAGE_SIZE).
    `synchronous`: FULL, a commit is on disk when it returns; NORMAL, for a connection
    whose commits may be lost to a power cut (they are not fsynced on their own)."""
    if synchronous not in ("FULL", "NORMAL"):  # (it goes into a PRAGMA as text)
        raise ValueError(f"synchronous = {synchronous!r}")
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                           check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if page_size is not None:  # before WAL, which fixes a new file's layout
        conn.execute(f"PRAGMA page_size = {page_size}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
    conn.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


class Database:
    """A connection as the store's users hold it: `execute` for queries, `conn` for
    transactions (the part of sqlite_utils.Database the project used)."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def execute(self, sql: str, parameters=()) -> sqlite3.Cursor:
        return self.conn.execute(sql, parameters)


def connect(path: str | Path, page_size: int | None = None, *,
            synchronous: str = "FULL", cache_kib: int = CACHE_KIB) -> Database:
    """A connection for the device's store, with a small page cache: the terminal looks
    up a visit or a business by index and appends at the end, so SQLite's default 2 MiB
    per connection would only hold pages it never reads again."""
    conn = open_connection(path, page_size, synchronous=synchronous)
    conn.execute(f"PRAGMA cache_size = -{int(cache_kib)}")
    return Database(conn)


@contextmanager
def write_transaction(conn):
    """BEGIN IMMEDIATE … COMMIT, or ROLLBACK on any error: the one way every part of the
    project (terminal, agent, receiver, CLI) writes to a SQLite store."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


@contextmanager
def read_transaction(conn):
    """BEGIN … COMMIT around reads that must see one state of the file (the terminal
    may append between two statements); nothing is written, so it always commits."""
    conn.execute("BEGIN")
    try:
        yield conn
    finally:
        if conn.in_transaction:
            conn.execute("COMMIT")


def meta(db) -> dict[str, str]:
    """The store's meta table: chain_id, hash_alg, device_id, and what the sync and a
    repair or salvage noted (last_upload_at, schema_restored, salvaged_from)."""
    return dict(db.execute("SELECT key, value FROM meta").fetchall())


def migrate(db) -> int:
    """Bring a store to SCHEMA_VERSION; `db` is a Database or a plain sqlite3 connection."""
    if isinstance(db, sqlite3.Connection):
        db = Database(db)
    version = schema_version(db)
    if version > SCHEMA_VERSION:
        raise StorageError(f"database schema {version} is newer than this software "
                           f"({SCHEMA_VERSION}); install the newer version")
    for target in range(version + 1, SCHEMA_VERSION + 1):
        # A migration that makes a table anew does it as SQLite documents: foreign keys
        # off around the transaction (the pragma does nothing inside one), checked at
        # its end, and set back as they were.
        rebuilds = target in REBUILDS
        keys_were = db.execute("PRAGMA foreign_keys").fetchone()[0]
        if rebuilds:
            db.execute("PRAGMA foreign_keys = OFF")
        try:
            with write_transaction(db.conn):
                if schema_version(db) >= target:  # the other process migrated meanwhile
                    continue
                MIGRATIONS[target](db)
                if rebuilds and db.execute("PRAGMA foreign_key_check").fetchone():
                    raise StorageError(f"schema {target}: rows point at records that are "
                                       f"not there any more")
                db.execute(f"PRAGMA user_version = {target}")
        finally:
            if rebuilds:
                db.execute(f"PRAGMA foreign_keys = {'ON' if keys_were else 'OFF'}")
    return SCHEMA_VERSION


def restore_schema(conn) -> list[str]:
    """Check the schema against what the migrations make; restore a missing or altered
    trigger or index (and the tables that can be made again empty). Returns what was
    restored, e.g. ["trigger records_no_delete"]; raises StorageError when a table that
    holds records or their state is gone."""
    lost, todo = missing_parts(conn)
    if lost:
        raise StorageError(f"the database has lost its table(s) {', '.join(lost)}: it was "
                           "tampered with or damaged; keep the file for analysis and start a "
                           "new store")
    if not todo:
        return []
    restored = [what for what, _, _ in todo]
    report = {"at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
              "restored": restored}
    with write_transaction(conn):
        for _, drop, sql in todo:
            if drop:
                conn.execute(drop)
            conn.execute(sql)
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                     [SCHEMA_REPAIR_KEY, json.dumps(report)])
    log.error("the database schema was incomplete; restored: %s", ", ".join(restored))
    return restored


def row_to_record(row: Mapping) -> dict:
    """The signed record as stored (exactly what was hashed and signed)."""
    return json.loads(row["json"])


class Reader:
    """Read-only queries on a connection of its own, for threads other than the writer's
    (a shared connection would let them see a transaction before its commit)."""

    def __init__(self, path: str | Path):
        if not Path(path).exists():
            raise StorageError(f"no database at {path}")
        self.db = connect(path)

    def visit(self, visit_id: str) -> list[dict]:
        rows = self.db.execute("SELECT json FROM records WHERE visit_id = ? ORDER BY seq",
                               [visit_id]).fetchall()
        return [json.loads(r[0]) for r in rows]

    def rated(self, project_no: str) -> bool:
        """Whether this business already has a rating (一次一评: one rating per service)."""
        row = self.db.execute("SELECT 1 FROM records WHERE project_no = ? AND kind = 'rating' "
                              "LIMIT 1", [project_no]).fetchone()
        return row is not None

    def rating_count(self, project_no: str) -> int:
        """How many ratings this business has here: 1, or 2 with its follow-up (追加评价)."""
        return self.db.execute("SELECT count(*) FROM records WHERE project_no = ? AND "
                               "kind = 'rating'", [project_no]).fetchone()[0]

    def records(self, after_seq: int = 0, limit: int | None = None) -> Iterator[dict]:
        sql = "SELECT json FROM records WHERE seq > ? ORDER BY seq"
        args: list = [after_seq]
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        for (text,) in self.db.execute(sql, args):
            yield json.loads(text)

    def count(self) -> int:
        return self.db.execute("SELECT count(*) FROM records").fetchone()[0]

    def last_seq(self) -> int:
        row = self.db.execute("SELECT max(seq) FROM records").fetchone()
        return row[0] or 0

    def pending_count(self) -> int:
        return sync_state.pending_count(self.db)

    def sync_view(self) -> dict:
        return sync_state.sync_view(self.db)

    def meta(self) -> dict[str, str]:
        return meta(self.db)

    def data_version(self) -> int:
        """Changes whenever another connection commits to the file (PRAGMA data_version):
        a cheap check whether anything needs reading again."""
        return self.db.execute("PRAGMA data_version").fetchone()[0]

    def integrity_check(self) -> str:
        return self.db.execute("PRAGMA integrity_check").fetchone()[0]

    def close(self) -> None:
        db, self.db = getattr(self, "db", None), None
        if db is not None:
            db.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Store(Reader):
    """The device's records. One instance per thread (sqlite3 connections are not shared)."""

    def __init__(self, path: str | Path, *, device_id: str, secret: bytes, hash_alg: str,
                 boot_id: str, new_id: Callable[[], str] = rec.uuid7):
        self.path = Path(path)
        self.device_id = device_id
        self.hash_alg = hash_alg
        self.boot_id = boot_id
        self._secret = secret
        self._new_id = new_id
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = connect(self.path, PAGE_SIZE)
            migrate(self.db)
            # what an attacker (or a technician's tool) dropped is put back at start
            self.restored = restore_schema(self.db.conn)
            self.chain_id = self._chain_meta()
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(f"cannot open {self.path}: {exc}") from exc

    def _chain_meta(self) -> str:
        known = meta(self.db)
        if "chain_id" not in known:
            import uuid  # here: only the terminal starts a chain (the agent shares this module)

            chain_id = str(uuid.uuid4())
            with write_transaction(self.db.conn) as conn:
                conn.execute("INSERT OR IGNORE INTO meta VALUES ('chain_id', ?), ('hash_alg', ?), "
                             "('device_id', ?)", [chain_id, self.hash_alg, self.device_id])
            known = meta(self.db)
        if known["hash_alg"] != self.hash_alg:
            raise StorageError(f"the records in {self.path} are chained with {known['hash_alg']} but "
                               f"the settings say hash_alg = {self.hash_alg!r}; a chain cannot change "
                               f"algorithm: restore the setting, or start a new store")
        if known["device_id"] != self.device_id:
            raise StorageError(f"the records in {self.path} belong to device {known['device_id']} but "
                               f"the settings say device.id = {self.device_id!r}")
        return known["chain_id"]

    def append(self, drafts: Sequence[Mapping]) -> list[dict]:
        """Seal and commit records (all of them or none); durable when this returns."""
        return self.commit(drafts)

    def commit(self, drafts: Sequence[Mapping] = (), opened: Sequence[Mapping] = ()) -> list[dict]:
        """In one transaction: seal and store `drafts`, forget the open visits they end,
        and remember a newly opened visit by `opened` (its records as `interrupted`,
        sealed if the terminal stops before the visit ends). Durable when this returns;
        on any error nothing of it is stored."""
        if not drafts and not opened:
            return []
        with self._lock:
            try:
                return self._commit_locked(drafts, opened)
            except (sqlite3.Error, OSError) as exc:
                raise StorageError(f"could not store {len(drafts)} record(s): {exc}") from exc
            except UnicodeError as exc:
                raise StorageError(f"a record holds text that cannot be stored ({exc.reason} "
                                   f"at {exc.start})") from exc

    def _commit_locked(self, drafts, opened):
        with write_transaction(self.db.conn) as conn:
            sealed = self._seal_locked(conn, drafts) if drafts else []
            # The rows of visits that ended stay until the next visit opens: a visit with
            # records is closed for good (the flow never reopens one), so such a row is
            # ignored (OPEN_ROWS), and the rating's commit writes one page less.
            if opened:
                kept = [dict(d, boot_id=d.get("boot_id") or self.boot_id) for d in opened]
                # (one row per visit: the table has no key, so the old row goes first)
                conn.execute("DELETE FROM open_visits WHERE visit_id = ? OR EXISTS (SELECT 1 "
                             "FROM records r WHERE r.visit_id = open_visits.visit_id)",
                             [kept[0]["visit_id"]])
                conn.execute("INSERT INTO open_visits (visit_id, opened_at, drafts) "
                             "VALUES (?, ?, ?)", [kept[0]["visit_id"], kept[0]["invited_at"],
                                                  json.dumps(kept, ensure_ascii=False)])
        return sealed

    def _seal_locked(self, conn, drafts):
        row = conn.execute("SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (row[0], row[1]) if row else (0, rec.ZERO_HASH)
        sealed = []
        for draft in drafts:
            seq += 1
            record = dict(draft)
            # a record of an earlier boot (an interrupted visit) keeps that boot's id: its
            # mono_ms counts from that boot
            record.update(record_id=self._new_id(), device_id=self.device_id,
                          chain_id=self.chain_id, seq=seq,
                          boot_id=record.get("boot_id") or self.boot_id)
            record = rec.seal(record, prev, self._secret, self.hash_alg)
            prev = record["hash"]
            insert_record(conn, record)  # (pending with no delivery row: sync_state.TAIL)
            sealed.append(record)
        return sealed

    def interrupted(self) -> list[dict]:
        """The records of visits left open by a crash, a power cut or a stop (reason
        `interrupted`), oldest visit first; `commit` of them ends those visits."""
        try:
            rows = self.db.execute(f"SELECT drafts {OPEN_ROWS} ORDER BY rowid").fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"cannot read the open visits: {exc}") from exc
        out = []
        for (text,) in rows:
            try:
                out.extend(json.loads(text))
            except ValueError:
                log.error("an open visit's row is not readable; left in place: %.80s", text)
        return out

    def open_visit_ids(self) -> list[str]:
        return [r[0] for r in self.db.execute(f"SELECT visit_id {OPEN_ROWS}")]

    def probe(self) -> None:
        """A small write, committed: does the store take writes now? StorageError if not."""
        with self._lock:
            try:
                with write_transaction(self.db.conn) as conn:
                    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES "
                                 "('checked_at', ?)",
                                 [datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")])
            except (sqlite3.Error, OSError) as exc:
                raise StorageError(f"the store takes no writes: {exc}") from exc

    def verify(self) -> list[dict]:
        """Check this device's whole chain; empty list means intact."""
        return rec.verify_chain(self.records(), self._secret, self.hash_alg)


# the open visits that have not ended: a visit with records has (see Store._commit_locked)
OPEN_ROWS = ("FROM open_visits o WHERE NOT EXISTS "
             "(SELECT 1 FROM records r WHERE r.visit_id = o.visit_id)")
_INSERT_RECORD = (f"INSERT INTO records (seq, {', '.join(COLUMNS)}) "
                  f"VALUES ({', '.join('?' for _ in ('seq',) + COLUMNS)})")


def insert_record(conn, record: Mapping) -> None:
    """Store a sealed record as it is: its JSON, exactly what was hashed and signed, with
    the columns queries use (store_schema.COLUMNS; no delivery row: the agent adopts it later, sync_state.adopt; a salvage
    copies the old one)."""
    conn.execute(_INSERT_RECORD, _record_row(record))


def _record_row(record: Mapping) -> list:
    row = [record["seq"]]
    for name in COLUMNS:
        if name == "json":
            row.append(json.dumps(record, ensure_ascii=False, sort_keys=True,
                                  separators=(",", ":")))
        elif name == "clock_synced":
            row.append(int(bool(record[name])))
        else:
            row.append(record[name])
    return row
