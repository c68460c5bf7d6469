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
import logging
import sqlite3
import threading
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

from terminal import records as rec

# Plain sqlite3 only: the terminal service and the sync agent both use this module, and
# sqlite_utils (which made the first schema) costs a process 4 MiB and 30 ms at start.

log = logging.getLogger("pingjia.terminal")

SCHEMA_VERSION = 4
DB_NAME = "pingjia.db"
BUSY_TIMEOUT_MS = 10_000
# SD cards wear by the bytes written. A commit writes each page it touches into the WAL
# whole (a rating touches about ten: the row, its indexes, the delivery row, the open
# visit), so small pages write less per rating: 1 KiB instead of SQLite's 4 KiB. Only a
# new database takes it; an older one keeps its page size until it is rebuilt.
PAGE_SIZE = 1024
# The WAL is checkpointed into the database every this many pages: 4 MiB of 1 KiB
# pages, what SQLite's default (1000 pages) is at 4 KiB. A checkpoint runs inside the
# commit that crosses the mark (a rating then takes a few ms more), and it copies each
# page once however often it changed, so fewer checkpoints also write less. After one,
# the WAL file is cut back to JOURNAL_SIZE_LIMIT.
WAL_AUTOCHECKPOINT_PAGES = 4000
JOURNAL_SIZE_LIMIT = 4 << 20
CACHE_KIB = 512  # page cache per connection (SQLite's default: 2000 KiB)

_BOOL_FIELDS = ("tags_missing", "clock_synced", "real_name")
_INT_FIELDS = ("seq", "level", "score", "assess_number", "mono_ms")


class StorageError(Exception):
    """The store could not take a record (disk full, I/O error, corrupt file)."""


def _create_v1(db) -> None:
    # (the SQL sqlite_utils wrote for the first stores, kept word for word: a store made
    # now has the same schema as one made then)
    columns = []
    for name in rec.FIELDS[:3] + ("seq",) + rec.FIELDS[4:] + ("json",):
        kind = "INTEGER" if name in _INT_FIELDS + _BOOL_FIELDS else "TEXT"
        extra = " PRIMARY KEY" if name == "seq" else (
            " NOT NULL" if name in ("record_id", "hash", "json") else "")
        columns.append(f'   "{name}" {kind}{extra}')
    db.execute('CREATE TABLE "records" (\n' + ",\n".join(columns) + "\n)")
    db.execute('CREATE UNIQUE INDEX "idx_records_record_id"\n    ON "records" ("record_id")')
    for name in ("visit_id", "project_no"):
        db.execute(f'CREATE INDEX "idx_records_{name}"\n    ON "records" ("{name}")')
    db.execute('CREATE TABLE "delivery" (\n   "seq" INTEGER PRIMARY KEY REFERENCES "records"("seq"),\n'
               '   "status" TEXT DEFAULT \'pending\',\n   "attempts" INTEGER DEFAULT 0,\n'
               '   "error" TEXT,\n   "updated_at" TEXT\n)')
    db.execute("CREATE INDEX delivery_pending ON delivery(seq) WHERE status = 'pending'")
    db.execute('CREATE TABLE "meta" (\n   "key" TEXT PRIMARY KEY,\n   "value" TEXT\n)')
    for op in ("UPDATE", "DELETE"):
        db.execute(f"CREATE TRIGGER records_no_{op.lower()} BEFORE {op} ON records "
                   f"BEGIN SELECT RAISE(ABORT, 'records are append-only'); END")


# parked: the agent found the stored row unreadable or not matching its own hash (a
# damaged or edited row); it is set aside on the device and the rows behind it go on.
DELIVERY_STATUSES = ("pending", "delivered", "rejected", "parked")
_STATUS_TRIGGERS = ("delivery_status_insert", "delivery_status_update")


def _status_guard(db) -> None:
    statuses = ", ".join(f"'{s}'" for s in DELIVERY_STATUSES)
    for op in ("INSERT", "UPDATE"):
        db.execute(f"CREATE TRIGGER delivery_status_{op.lower()} BEFORE {op} ON delivery "
                   f"WHEN NEW.status NOT IN ({statuses}) "
                   f"BEGIN SELECT RAISE(ABORT, 'unknown delivery status'); END")


def _sync_v2(db) -> None:
    """The sync agent's tables: corrected times, the central config, status guard, indexes."""
    _status_guard(db)
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


def _open_visits_v3(db) -> None:
    """Open invitations, durable before the API answers 201 (one row per open visit, gone
    in the same transaction that stores its records), and the `parked` delivery status."""
    for name in _STATUS_TRIGGERS:
        db.execute(f"DROP TRIGGER IF EXISTS {name}")
    _status_guard(db)
    db.execute("CREATE INDEX delivery_parked ON delivery(seq) WHERE status = 'parked'")
    # drafts: the visit's records as `interrupted` (JSON list), ready to be sealed if the
    # terminal stops or loses power before the visit ends
    db.execute("CREATE TABLE open_visits (visit_id TEXT PRIMARY KEY, opened_at TEXT NOT NULL, "
               "drafts TEXT NOT NULL)")


def _small_open_visits_v4(db) -> None:
    """open_visits without a key: its row is written and deleted once per visit, and the
    table holds one row or two, so a lookup by visit_id reads a page or two anyway, while
    a key would be a second b-tree written per visit (and a key of the index kind, WITHOUT
    ROWID, would push the drafts to an overflow page that is freed and taken again)."""
    db.execute("CREATE TABLE open_visits_v4 (visit_id TEXT NOT NULL, opened_at TEXT NOT NULL, "
               "drafts TEXT NOT NULL)")
    db.execute("INSERT INTO open_visits_v4 SELECT visit_id, opened_at, drafts FROM open_visits")
    db.execute("DROP TABLE open_visits")
    db.execute("ALTER TABLE open_visits_v4 RENAME TO open_visits")


MIGRATIONS: dict[int, Callable[["Database"], None]] = {
    1: _create_v1, 2: _sync_v2, 3: _open_visits_v3, 4: _small_open_visits_v4}


def open_connection(path: str | Path, page_size: int | None = None) -> sqlite3.Connection:
    """A plain connection with the store's settings (autocommit; transactions are explicit).
    `page_size`: for a file this connection creates (the device's store: PAGE_SIZE)."""
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                           check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if page_size is not None:  # before WAL, which fixes a new file's layout
        conn.execute(f"PRAGMA page_size = {page_size}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
    conn.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


class Database:
    """A connection as the store's users hold it: `execute` for queries, `conn` for
    transactions (the part of sqlite_utils.Database the project used)."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def execute(self, sql: str, parameters=()) -> sqlite3.Cursor:
        return self.conn.execute(sql, parameters)


def connect(path: str | Path, page_size: int | None = None) -> Database:
    """A connection for the device's store, with a small page cache: the terminal looks
    up a visit or a business by index and appends at the end, so SQLite's default 2 MiB
    per connection would only hold pages it never reads again."""
    conn = open_connection(path, page_size)
    conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
    return Database(conn)


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


def migrate(db) -> int:
    """Bring a store to SCHEMA_VERSION; `db` is a Database or a plain sqlite3 connection."""
    if isinstance(db, sqlite3.Connection):
        db = Database(db)
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
        "parked": _count_parked(db),
        "last_upload_at": last[0] if last else None,
    }


def _count_parked(db) -> int:
    try:
        return db.execute("SELECT count(*) FROM delivery WHERE status = 'parked'").fetchone()[0]
    except sqlite3.OperationalError:  # a store of schema 2, not yet migrated
        return 0


SCHEMA_REPAIR_KEY = "schema_restored"


def schema_repair(db) -> dict | None:
    """The last repair of the schema at start ({"at", "restored": [...]}), or None."""
    row = db.execute("SELECT value FROM meta WHERE key = ?", [SCHEMA_REPAIR_KEY]).fetchone()
    return json.loads(row[0]) if row else None


def _reference_schema() -> dict[str, tuple[str, str]]:
    """name -> (type, sql) of every table, index and trigger the migrations make."""
    db = Database(sqlite3.connect(":memory:", isolation_level=None))
    try:
        for target in sorted(MIGRATIONS):
            MIGRATIONS[target](db)
        return {name: (kind, sql) for kind, name, sql in db.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL")}
    finally:
        db.conn.close()


# Tables that may be made again empty if missing: nothing signed or sent lives in them
# for long (an open visit lost with its table is found by the chain's receiver as a gap
# in what the business system was told, not hidden here).
_RESTORABLE_TABLES = ("central_config", "corrections", "open_visits")


def _same_sql(a: str, b: str) -> bool:
    return " ".join(a.split()) == " ".join(b.split())


def restore_schema(conn) -> list[str]:
    """Check the schema against what the migrations make; restore a missing or altered
    trigger or index (and the tables that can be made again empty). Returns what was
    restored, e.g. ["trigger records_no_delete"]; raises StorageError when a table that
    holds records or their state is gone."""
    want = _reference_schema()
    have = {name: (kind, sql) for kind, name, sql in conn.execute(
        "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL")}
    missing_tables = [n for n, (kind, _) in want.items() if kind == "table" and n not in have]
    lost = [n for n in missing_tables if n not in _RESTORABLE_TABLES]
    if lost:
        raise StorageError(f"the database has lost its table(s) {', '.join(lost)}: it was "
                           "tampered with or damaged; keep the file for analysis and start a "
                           "new store")
    todo = []
    for name in missing_tables:
        todo.append((f"table {name}", None, want[name][1]))
    for name, (kind, sql) in want.items():
        if kind == "table":
            continue
        if name not in have:
            todo.append((f"{kind} {name}", None, sql))
        elif kind == "trigger" and not _same_sql(have[name][1], sql):
            # a trigger of the same name that does something else (e.g. nothing)
            todo.append((f"{kind} {name} (altered)", f"DROP TRIGGER {name}", sql))
    if not todo:
        return []
    # tables first, then indexes, then triggers: each may need the one before
    order = {"table": 0, "index": 1, "trigger": 2}
    todo.sort(key=lambda t: order[t[0].split()[0]])
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
            self.db = connect(self.path, PAGE_SIZE)
            migrate(self.db)
            # what an attacker (or a technician's tool) dropped is put back at start
            self.restored = restore_schema(self.db.conn)
            self.chain_id = self._chain_meta()
        except (sqlite3.Error, OSError) as exc:
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
            ended = sorted({d["visit_id"] for d in drafts})
            if ended:
                conn.execute("DELETE FROM open_visits WHERE visit_id IN "
                             "(SELECT value FROM json_each(?))", [json.dumps(ended)])
            if opened:
                kept = [dict(d, boot_id=d.get("boot_id") or self.boot_id) for d in opened]
                # (one row per visit: the table has no key, so the old row goes first)
                conn.execute("DELETE FROM open_visits WHERE visit_id = ?", [kept[0]["visit_id"]])
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
            conn.execute(_INSERT_RECORD, _record_row(record))
            conn.execute("INSERT INTO delivery (seq, status, attempts) VALUES (?, 'pending', 0)",
                         (seq,))
            sealed.append(record)
        return sealed

    def interrupted(self) -> list[dict]:
        """The records of visits left open by a crash, a power cut or a stop (reason
        `interrupted`), oldest visit first; `commit` of them ends those visits."""
        try:
            rows = self.db.execute("SELECT drafts FROM open_visits ORDER BY rowid").fetchall()
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
        return [r[0] for r in self.db.execute("SELECT visit_id FROM open_visits")]

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
