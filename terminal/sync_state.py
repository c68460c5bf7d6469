"""The sync state in the device database: the records' delivery rows, the corrected
times sent, the central config pulled, the time of the last upload.

Every statement the sync agent (agent/outbox.py), the technician's `pingjia outbox`
and GET /v1/status run on that state, in one place: the partial indexes of the schema
(terminal/store_schema.py) serve exactly these queries, so a change of one is seen
beside the other. Functions take anything with `execute` (a sqlite3 connection or a
store.Database); the ones that write run inside the caller's transaction
(store.write_transaction), because which writes go together is the caller's logic.
"""
from __future__ import annotations

import io
import json
import sqlite3
from typing import Iterable, Iterator, Optional, Sequence

from terminal.store_schema import DELIVERY_STATUSES, UNSYNCED_KEY

# The records after the last delivery row have no row yet: a rating's commit writes
# none (fewer pages per rating, terminal/store_schema.py v5). They are pending, and the
# agent adopts them (`adopt`) before it reads a batch, so every query of the upload sees
# delivery rows only; what the status and the technician see counts the tail as well.
# Every record up to the last row has a row of its own: rows are only ever added for the
# whole tail at once (here and in a salvage).
LAST_ROW = "(SELECT coalesce(max(seq), 0) FROM delivery)"
TAIL = f"FROM records WHERE seq > {LAST_ROW}"
# records made in the boot given twice as parameters, by the key of records_unsynced
_THIS_BOOT = f"{UNSYNCED_KEY.replace('boot_id', 'r.boot_id')} = substr(?, 1, 8) AND r.boot_id = ?"


def _field(table: str, name: str) -> str:
    """A record field kept only in its JSON (store_schema.COLUMNS has the others); NULL
    where the stored JSON is damaged (a parked row is still listed)."""
    column = f"{table}.json" if table else "json"
    return f"CASE WHEN json_valid({column}) THEN json_extract({column}, '$.{name}') END"


_PENDING_COUNT = (f"SELECT (SELECT count(*) FROM delivery WHERE status = 'pending') + "
                  f"(SELECT count(*) {TAIL})")
_PENDING = ("FROM delivery d JOIN records r ON r.seq = d.seq WHERE d.status = 'pending' "
            "ORDER BY d.seq")


def tail_rows(db, limit: int, upto: Optional[int] = None) -> list[tuple]:
    """(seq, kind, level) of the oldest `limit` records of the tail (-1: all, as SQLite's
    LIMIT), those up to seq `upto` if given. A record whose row cannot be read whole (a damaged page) comes
    without kind and level: the upload then finds it unreadable and parks it. Read
    outside the write transaction of `adopt`: a read that meets a damaged page leaves
    the transaction it ran in unable to write."""
    where = f"{TAIL} AND seq <= ?" if upto is not None else TAIL
    args = ([upto] if upto is not None else []) + [limit]
    try:
        return db.execute(f"SELECT seq, kind, level {where} ORDER BY seq LIMIT ?", args).fetchall()
    except sqlite3.DatabaseError:
        return [(seq, *_kind_level(db, seq)) for (seq,) in db.execute(  # the keys alone
            f"SELECT seq {where} ORDER BY seq LIMIT ?", args).fetchall()]


def _kind_level(db, seq: int) -> tuple:
    try:
        return tuple(db.execute("SELECT kind, level FROM records WHERE seq = ?", [seq]).fetchone())
    except sqlite3.DatabaseError:
        return None, None


def adopt_tail(db, limit: int, upto: Optional[int] = None) -> int:
    """`tail_rows` and `adopt` in one statement, in the caller's write transaction (no
    row through Python); how many. sqlite3.DatabaseError on a damaged page: roll back,
    then `tail_rows` outside the transaction and `adopt` in a new one."""
    where = f"{TAIL} AND seq <= ?" if upto is not None else TAIL
    args = ([upto] if upto is not None else []) + [limit]
    return db.execute(f"INSERT INTO delivery (seq, status, attempts, kind, level) "
                      f"SELECT seq, 'pending', 0, kind, level {where} ORDER BY seq LIMIT ?",
                      args).rowcount


def adopt(db, rows: Sequence[tuple]) -> int:
    """Give the records of `tail_rows` a pending delivery row each (in the caller's write
    transaction); how many. Rows another process adopted meanwhile are left as they are."""
    last = db.execute(LAST_ROW[1:-1]).fetchone()[0]
    rows = [r for r in rows if r[0] > last]
    db.executemany("INSERT INTO delivery (seq, status, attempts, kind, level) "
                   "VALUES (?, 'pending', 0, ?, ?)", rows)
    return len(rows)


# --- what the status, heartbeat and metrics show ---------------------------------

def sync_view(db) -> dict:
    """The sync state for GET /v1/status (names as the local API documents them)."""
    # (pending rows all come before the tail)
    oldest = (db.execute(f"SELECT {_field('r', 'rated_at')}, {_field('r', 'invited_at')} "
                         f"{_PENDING} LIMIT 1").fetchone()
              or db.execute(f"SELECT {_field('', 'rated_at')}, {_field('', 'invited_at')} {TAIL} "
                            f"ORDER BY seq LIMIT 1").fetchone())
    last = db.execute("SELECT value FROM meta WHERE key = 'last_upload_at'").fetchone()
    return {
        "queue_depth": pending_count(db),
        "oldest_unsent_at": (oldest[0] or oldest[1]) if oldest else None,
        "rejected": db.execute("SELECT count(*) FROM delivery WHERE status = 'rejected'").fetchone()[0],
        "parked": _count_parked(db),
        "last_upload_at": last[0] if last else None,
    }


def _count_parked(db) -> int:
    try:
        return db.execute("SELECT count(*) FROM delivery WHERE status = 'parked'").fetchone()[0]
    except sqlite3.OperationalError:  # a store of schema 2, not yet migrated
        return 0


def pending_count(db) -> int:
    return db.execute(_PENDING_COUNT).fetchone()[0]


def status_counts(db) -> dict[str, int]:
    """Records by delivery status, every status listed (0 when none)."""
    by = dict(db.execute("SELECT status, count(*) FROM delivery GROUP BY status").fetchall())
    by["pending"] = by.get("pending", 0) + db.execute(f"SELECT count(*) {TAIL}").fetchone()[0]
    return {s: by.get(s, 0) for s in DELIVERY_STATUSES}


def kind_level_counts(db) -> list[tuple]:
    """(kind, level, count) of every record made on the device (for the metrics), from
    the small delivery rows and the tail (a row whose record could not be read when it
    was adopted has no kind and is not counted)."""
    return db.execute(f"SELECT kind, level, count(*) FROM (SELECT kind, level FROM delivery "
                      f"UNION ALL SELECT kind, level {TAIL}) WHERE kind IS NOT NULL "
                      f"GROUP BY kind, level").fetchall()


# --- the upload ------------------------------------------------------------------

def pending_rows(db, limit: int) -> list[tuple[int, str, bytes]]:
    """(seq, record_id, stored JSON as bytes) of the oldest pending records (from the
    partial index on pending delivery rows)."""
    return db.execute(f"SELECT d.seq, r.record_id, CAST(r.json AS BLOB) {_PENDING} LIMIT ?",
                      [limit]).fetchall()


def pending_batch(db, limit: int, head: str, tail: str) -> tuple[list[tuple[int, str]], bytes]:
    """(seq, record_id) of the oldest pending records, and a body: their stored JSON
    joined with commas between `head` and `tail` (b"" when none is pending).

    One query, and one record's JSON at a time in Python: the body grows in one buffer
    and is handed out without a copy (BytesIO.getvalue), so a batch costs its body once,
    not a Python object per record beside it (make bench: the agent's RSS)."""
    keys = []
    body = io.BytesIO()
    body.write(head.encode("utf-8"))
    for seq, record_id, stored in db.execute(
            f"SELECT d.seq, r.record_id, CAST(r.json AS BLOB) {_PENDING} LIMIT ?", [limit]):
        if keys:
            body.write(b",")
        body.write(stored)
        keys.append((seq, record_id))
    if not keys:
        return [], b""
    body.write(tail.encode("utf-8"))
    return keys, body.getvalue()


def pending_seqs(db, limit: Optional[int] = None) -> list[int]:
    """The oldest pending seqs, the tail's included, from the keys alone (when the
    records' pages cannot be read, these still say which rows to look at)."""
    sql = f"SELECT seq FROM delivery WHERE status = 'pending' UNION ALL SELECT seq {TAIL} ORDER BY seq"
    args: list = []
    if limit is not None:
        sql += " LIMIT ?"
        args.append(limit)
    return [r[0] for r in db.execute(sql, args)]


def pending_json(db) -> Iterator:
    """The stored JSON (text) of every pending record, the tail's included, oldest first,
    as a cursor."""
    return db.execute(f"SELECT json FROM (SELECT r.json AS json {_PENDING}) "
                      f"UNION ALL SELECT json FROM (SELECT json {TAIL} ORDER BY seq)")


def record_id(db, seq: int) -> Optional[str]:
    """The record_id of the row `seq`; sqlite3.DatabaseError when it cannot be read."""
    row = db.execute("SELECT record_id FROM records WHERE seq = ?", [seq]).fetchone()
    return row[0] if row else None


def stored_json(db, seq: int) -> bytes:
    """One row's stored JSON as bytes; sqlite3.DatabaseError when it cannot be read."""
    row = db.execute("SELECT CAST(json AS BLOB) FROM records WHERE seq = ?", [seq]).fetchone()
    if row is None or row[0] is None:
        raise sqlite3.DatabaseError(f"record {seq} has no stored JSON")
    return bytes(row[0])


def mark(db, outcomes: Sequence[tuple[int, str, Optional[str]]], tries: int, at: str) -> None:
    """The central system's answer for a batch: (seq, status, error) each."""
    delivered = [seq for seq, status, _ in outcomes if status == "delivered"]
    # delivered rows in one statement (most of a batch); the rare others one by one
    db.execute("UPDATE delivery SET status = 'delivered', error = NULL, "
               "attempts = attempts + ?, updated_at = ? "
               "WHERE seq IN (SELECT value FROM json_each(?))",
               [tries, at, json.dumps(delivered)])
    db.executemany("UPDATE delivery SET status = ?, error = ?, attempts = attempts + ?, "
                   "updated_at = ? WHERE seq = ?",
                   [(status, error, tries, at, seq) for seq, status, error in outcomes
                    if status != "delivered"])
    db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('last_upload_at', ?)", [at])


def park(db, rows: Iterable[tuple[int, str]], at: str) -> None:
    """Pending rows set aside with the reason: (seq, why) each."""
    db.executemany("UPDATE delivery SET status = 'parked', error = ?, updated_at = ? "
                   "WHERE seq = ? AND status = 'pending'",
                   [(error[:500], at, seq) for seq, error in rows])


def requeue_rejected(db, at: str) -> list[int]:
    """Put every rejected record back in the queue; their seqs. The old error stays in
    the row: it says why it was rejected before."""
    seqs = [r[0] for r in db.execute("SELECT seq FROM delivery WHERE status = 'rejected' "
                                     "ORDER BY seq")]
    db.execute("UPDATE delivery SET status = 'pending', updated_at = ? WHERE status = 'rejected'",
               [at])
    return seqs


# --- what the technician lists -------------------------------------------------------

ROW_KEYS = ("seq", "record_id", "kind", "level", "unrated_reason", "project_no", "task_name",
            "invited_at", "rated_at", "status", "attempts", "error", "updated_at")
_ROWS = (f"SELECT r.seq, r.record_id, r.kind, r.level, {_field('r', 'unrated_reason')}, "
         f"r.project_no, {_field('r', 'task_name')}, {_field('r', 'invited_at')}, "
         f"{_field('r', 'rated_at')}, coalesce(d.status, 'pending'), "
         "coalesce(d.attempts, 0), d.error, d.updated_at "
         "FROM records r LEFT JOIN delivery d ON d.seq = r.seq")


def listed(db, *, after_seq: int = 0, statuses: Sequence[str] = (), kind: Optional[str] = None,
           limit: int = 0) -> list[dict]:
    """Records with their delivery state (ROW_KEYS), the newest `limit` (0: all) of
    those matching, oldest first."""
    where, params = ["r.seq > ?"], [after_seq]
    if statuses:
        where.append(f"coalesce(d.status, 'pending') IN ({', '.join('?' for _ in statuses)})")
        params += list(statuses)
    if kind:
        where.append("r.kind = ?")
        params.append(kind)
    sql = f"{_ROWS} WHERE {' AND '.join(where)} ORDER BY r.seq DESC"
    if limit > 0:
        sql += f" LIMIT {int(limit)}"
    return [dict(zip(ROW_KEYS, r)) for r in reversed(db.execute(sql, params).fetchall())]


def one(db, key: int | str) -> Optional[tuple[str, dict]]:
    """(stored JSON, delivery state) of the record with this seq (int) or record_id."""
    column = "r.seq" if isinstance(key, int) else "r.record_id"
    row = db.execute(f"SELECT r.json, coalesce(d.status, 'pending'), coalesce(d.attempts, 0), "
                     f"d.error, d.updated_at FROM records r LEFT JOIN delivery d "
                     f"ON d.seq = r.seq WHERE {column} = ?",
                     [key]).fetchone()
    if row is None:
        return None
    return row[0], dict(zip(("status", "attempts", "error", "updated_at"), row[1:]))


# --- clock corrections -----------------------------------------------------------

def correction_candidates(db, boot_id: str, limit: int) -> list[tuple]:
    """(seq, record_id, kind, invited_at, rated_at, mono_ms) of this boot's delivered
    records made with an unsynchronised clock and not corrected yet."""
    return db.execute(
        f"SELECT r.seq, r.record_id, r.kind, {_field('r', 'invited_at')}, "
        f"{_field('r', 'rated_at')}, {_field('r', 'mono_ms')} "
        f"FROM records r JOIN delivery d ON d.seq = r.seq "
        f"LEFT JOIN corrections c ON c.seq = r.seq "
        f"WHERE r.clock_synced = 0 AND {_THIS_BOOT} AND d.status = 'delivered' "
        f"AND c.seq IS NULL ORDER BY r.seq LIMIT ?", [boot_id, boot_id, limit]).fetchall()


def uncorrectable(db, boot_id: str) -> int:
    """Records made with an unsynchronised clock in another boot than `boot_id`."""
    # (all of them, less this boot's: both counts from the index)
    return db.execute(f"SELECT (SELECT count(*) FROM records WHERE clock_synced = 0) - "
                      f"(SELECT count(*) FROM records r WHERE r.clock_synced = 0 AND {_THIS_BOOT})",
                      [boot_id, boot_id]).fetchone()[0]


def mark_corrections(db, rows: Iterable[tuple], at: str) -> None:
    """rows: (seq, invited_at, rated_at, basis, status, error)."""
    db.executemany("INSERT OR REPLACE INTO corrections (seq, invited_at, rated_at, basis, "
                   "status, error, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                   [(*row, at) for row in rows])


# --- central config ----------------------------------------------------------------

def central_config(db) -> tuple[str | None, dict] | None:
    """The last good config pulled from the central system: (etag, body), or None."""
    row = db.execute("SELECT etag, body FROM central_config WHERE id = 1").fetchone()
    return (row[0], json.loads(row[1])) if row else None


def central_etag(db) -> str | None:
    """Cheap check whether the central config changed (the terminal polls this)."""
    row = db.execute("SELECT coalesce(etag, fetched_at) FROM central_config WHERE id = 1").fetchone()
    return row[0] if row else None


def save_central_config(db, etag: Optional[str], body: str, at: str) -> None:
    db.execute("INSERT OR REPLACE INTO central_config (id, etag, body, fetched_at) "
               "VALUES (1, ?, ?, ?)", [etag, body, at])
