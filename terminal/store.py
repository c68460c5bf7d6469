"""The SQLite store: append-only, chained, signed records, and their delivery state.

One file shared by the terminal (which appends) and the agent (which marks delivery).
WAL mode with synchronous=FULL: a commit is on disk when `append` returns, which is
what lets the screen thank the person. The signed content of a record never changes
after insert; triggers refuse UPDATE and DELETE on the records table, so a technician
with `sqlite-utils` cannot edit a record by accident (an attacker who drops the
triggers still breaks the hash chain, which the central system sees).
"""
from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

from terminal import records as rec

# sqlite_utils is imported where a Database is made (connect), not here: the sync agent
# reads and marks the outbox on a plain sqlite3 connection and stays small.

SCHEMA_VERSION = 2
DB_NAME = "pingjia.db"
BUSY_TIMEOUT_MS = 10_000

_BOOL_FIELDS = ("tags_missing", "clock_synced", "real_name")
_INT_FIELDS = ("seq", "level", "score", "assess_number", "mono_ms")


class StorageError(Exception):
    """The store could not take a record (disk full, I/O error, corrupt file)."""


def _create_v1(db: sqlite_utils.Database) -> None:
    columns = {}
    for name in rec.FIELDS:
        columns[name] = int if name in _INT_FIELDS + _BOOL_FIELDS else str
    columns["json"] = str
    db["records"].create(columns, pk="seq", not_null={"record_id", "hash", "json"})
    db["records"].create_index(["record_id"], unique=True)
    db["records"].create_index(["visit_id"])
    db["records"].create_index(["project_no"])
    db["delivery"].create({"seq": int, "status": str, "attempts": int, "error": str,
                           "updated_at": str}, pk="seq",
                          foreign_keys=[("seq", "records", "seq")],
                          defaults={"status": "pending", "attempts": 0})
    db.execute("CREATE INDEX delivery_pending ON delivery(seq) WHERE status = 'pending'")
    db["meta"].create({"key": str, "value": str}, pk="key")
    for op in ("UPDATE", "DELETE"):
        db.execute(f"CREATE TRIGGER records_no_{op.lower()} BEFORE {op} ON records "
                   f"BEGIN SELECT RAISE(ABORT, 'records are append-only'); END")


DELIVERY_STATUSES = ("pending", "delivered", "rejected")


def _sync_v2(db) -> None:
    """The sync agent's tables: corrected times, the central config, status guard, indexes."""
    statuses = ", ".join(f"'{s}'" for s in DELIVERY_STATUSES)
    for op in ("INSERT", "UPDATE"):
        db.execute(f"CREATE TRIGGER delivery_status_{op.lower()} BEFORE {op} ON delivery "
                   f"WHEN NEW.status NOT IN ({statuses}) "
                   f"BEGIN SELECT RAISE(ABORT, 'unknown delivery status'); END")
    db.execute("CREATE INDEX delivery_rejected ON delivery(seq) WHERE status = 'rejected'")
    db.execute("CREATE INDEX records_unsynced ON records(boot_id, seq) WHERE clock_synced = 0")
    db.execute("CREATE INDEX records_kind_level ON records(kind, level)")  # metrics counts
    db.execute("CREATE TABLE central_config (id INTEGER PRIMARY KEY CHECK (id = 1), etag TEXT, "
               "body TEXT NOT NULL, fetched_at TEXT NOT NULL)")
    # corrected times sent for records made while the clock was not synchronised; the
    # signed record never changes. status: the central system's answer (delivered/rejected)
    db.execute("CREATE TABLE corrections (seq INTEGER PRIMARY KEY REFERENCES records(seq), "
               "invited_at TEXT, rated_at TEXT, basis TEXT NOT NULL, status TEXT NOT NULL, "
               "error TEXT, updated_at TEXT NOT NULL)")


MIGRATIONS: dict[int, Callable[[sqlite_utils.Database], None]] = {1: _create_v1, 2: _sync_v2}


def open_connection(path: str | Path) -> sqlite3.Connection:
    """A plain connection with the store's settings (autocommit; transactions are explicit)."""
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                           check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def connect(path: str | Path) -> sqlite_utils.Database:
    import sqlite_utils
    return sqlite_utils.Database(open_connection(path))


def schema_version(db) -> int:
    return db.execute("PRAGMA user_version").fetchone()[0]


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


def migrate(db: sqlite_utils.Database) -> int:
    version = schema_version(db)
    if version > SCHEMA_VERSION:
        raise StorageError(f"database schema {version} is newer than this software "
                           f"({SCHEMA_VERSION}); install the newer version")
    for target in range(version + 1, SCHEMA_VERSION + 1):
        with write_transaction(db.conn):
            if schema_version(db) >= target:  # the other process migrated meanwhile
                continue
            MIGRATIONS[target](db)
            db.execute(f"PRAGMA user_version = {target}")
    return SCHEMA_VERSION


_PENDING_COUNT = "SELECT count(*) FROM delivery WHERE status = 'pending'"


def sync_view(db) -> dict:
    """The sync state for GET /v1/status (names as the local API documents them).

    `db` is anything with `execute` (a sqlite3 connection or a sqlite_utils Database).
    """
    oldest = db.execute("SELECT coalesce(r.rated_at, r.invited_at) FROM delivery d "
                        "JOIN records r ON r.seq = d.seq WHERE d.status = 'pending' "
                        "ORDER BY d.seq LIMIT 1").fetchone()
    last = db.execute("SELECT value FROM meta WHERE key = 'last_upload_at'").fetchone()
    return {
        "queue_depth": db.execute(_PENDING_COUNT).fetchone()[0],
        "oldest_unsent_at": oldest[0] if oldest else None,
        "rejected": db.execute("SELECT count(*) FROM delivery WHERE status = 'rejected'").fetchone()[0],
        "last_upload_at": last[0] if last else None,
    }


def central_config(db) -> tuple[str | None, dict] | None:
    """The last good config pulled from the central system: (etag, body), or None."""
    row = db.execute("SELECT etag, body FROM central_config WHERE id = 1").fetchone()
    return (row[0], json.loads(row[1])) if row else None


def central_etag(db) -> str | None:
    """Cheap check whether the central config changed (the terminal polls this)."""
    row = db.execute("SELECT coalesce(etag, fetched_at) FROM central_config WHERE id = 1").fetchone()
    return row[0] if row else None


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
        return self.db.execute(_PENDING_COUNT).fetchone()[0]

    def sync_view(self) -> dict:
        return sync_view(self.db)

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
            self.db = connect(self.path)
            migrate(self.db)
            self.chain_id = self._chain_meta()
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open {self.path}: {exc}") from exc

    def _chain_meta(self) -> str:
        meta = dict(self.db.execute("SELECT key, value FROM meta").fetchall())
        if "chain_id" not in meta:
            chain_id = str(uuid.uuid4())
            with write_transaction(self.db.conn) as conn:
                conn.execute("INSERT OR IGNORE INTO meta VALUES ('chain_id', ?), ('hash_alg', ?), "
                             "('device_id', ?)", [chain_id, self.hash_alg, self.device_id])
            meta = dict(self.db.execute("SELECT key, value FROM meta").fetchall())
        if meta["hash_alg"] != self.hash_alg:
            raise StorageError(f"the records in {self.path} are chained with {meta['hash_alg']} but "
                               f"the settings say hash_alg = {self.hash_alg!r}; a chain cannot change "
                               f"algorithm: restore the setting, or start a new store")
        if meta["device_id"] != self.device_id:
            raise StorageError(f"the records in {self.path} belong to device {meta['device_id']} but "
                               f"the settings say device.id = {self.device_id!r}")
        return meta["chain_id"]

    def append(self, drafts: Sequence[Mapping]) -> list[dict]:
        """Seal and commit records (all of them or none); durable when this returns."""
        if not drafts:
            return []
        with self._lock:
            try:
                return self._append_locked(drafts)
            except sqlite3.Error as exc:
                raise StorageError(f"could not store {len(drafts)} record(s): {exc}") from exc

    def _append_locked(self, drafts):
        with write_transaction(self.db.conn) as conn:
            row = conn.execute("SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = (row[0], row[1]) if row else (0, rec.ZERO_HASH)
            sealed = []
            for draft in drafts:
                seq += 1
                record = dict(draft)
                record.update(record_id=self._new_id(), device_id=self.device_id,
                              chain_id=self.chain_id, seq=seq, boot_id=self.boot_id)
                record = rec.seal(record, prev, self._secret, self.hash_alg)
                prev = record["hash"]
                conn.execute(_INSERT_RECORD, _record_row(record))
                conn.execute("INSERT INTO delivery (seq, status, attempts) VALUES (?, 'pending', 0)",
                             (seq,))
                sealed.append(record)
        return sealed

    def verify(self) -> list[dict]:
        """Check this device's whole chain; empty list means intact."""
        return rec.verify_chain(self.records(), self._secret, self.hash_alg)


_COLUMNS = rec.FIELDS + ("json",)
_INSERT_RECORD = (f"INSERT INTO records ({', '.join(_COLUMNS)}) "
                  f"VALUES ({', '.join('?' for _ in _COLUMNS)})")


def _record_row(record: dict) -> list:
    row = []
    for name in rec.FIELDS:
        value = record[name]
        if name == "tags":
            value = json.dumps(value, ensure_ascii=False)
        elif name in _BOOL_FIELDS:
            value = int(bool(value))
        row.append(value)
    row.append(json.dumps(record, ensure_ascii=False, sort_keys=True, separators=(",", ":")))
    return row
