"""The agent's side of the store: read pending records batch by batch, mark the answers.

A plain sqlite3 connection in autocommit mode. Reads run as single statements that are
fetched completely, so no read transaction is ever open while the agent waits on the
network; writes are one short `BEGIN IMMEDIATE` transaction per answer (the terminal's
appends wait at most that long, and busy_timeout covers it).
"""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Iterable, NamedTuple, Optional

from terminal import store



class Row(NamedTuple):
    seq: int
    record_id: str
    json: bytes  # the signed record as stored (UTF-8 JSON)


class Key(NamedTuple):
    seq: int
    record_id: str


class Candidate(NamedTuple):
    """A delivered record of this boot made while the clock was not synchronised."""
    seq: int
    record_id: str
    kind: str
    invited_at: str
    rated_at: Optional[str]
    mono_ms: int


class Outbox:
    def __init__(self, path: str | Path, *, device_id: str, hash_alg: str):
        path = Path(path)
        if not path.exists():
            raise store.StorageError(f"no database at {path}: the terminal creates it on its "
                                     f"first start (check device.data_dir)")
        try:
            self.conn = store.open_connection(path)
            # the agent reads each record once: a small page cache keeps it small
            self.conn.execute(f"PRAGMA cache_size = -{store.CACHE_KIB}")
            # The agent's own commits need not wait for the disk: a mark lost to a power
            # cut only means the batch goes again and is answered `duplicate`. Per
            # connection: the terminal's appends stay synchronous=FULL, and their fsync
            # of the WAL covers any earlier frame of ours.
            self.conn.execute("PRAGMA synchronous = NORMAL")
            version = store.schema_version(self.conn)
            if version == 0:
                raise store.StorageError(f"{path} holds no records store yet: start the terminal first")
            if version < store.SCHEMA_VERSION:
                store.migrate(self.conn)  # the terminal does the same; migrate() is race-safe
            elif version > store.SCHEMA_VERSION:
                raise store.StorageError(f"database schema {version} in {path} is newer than this "
                                         f"software ({store.SCHEMA_VERSION}); install the newer version")
            meta = dict(self.conn.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.Error as exc:
            raise store.StorageError(f"cannot open {path}: {exc}") from None
        if meta.get("device_id") != device_id:
            raise store.StorageError(f"the records in {path} belong to device {meta.get('device_id')} "
                                     f"but the settings say device.id = {device_id!r}")
        if meta.get("hash_alg") != hash_alg:
            raise store.StorageError(f"the records in {path} are chained with {meta.get('hash_alg')} "
                                     f"but the settings say device.hash_alg = {hash_alg!r}")
        self.path = path

    def _write(self):
        return store.write_transaction(self.conn)

    # --- upload ----------------------------------------------------------------

    def next_batch(self, limit: int) -> list[Row]:
        """The oldest pending records (from the partial index on pending delivery rows)."""
        rows = self.conn.execute(
            "SELECT d.seq, r.record_id, CAST(r.json AS BLOB) FROM delivery d "
            "JOIN records r ON r.seq = d.seq "
            "WHERE d.status = 'pending' ORDER BY d.seq LIMIT ?", [limit]).fetchall()
        return [Row(*r) for r in rows]

    def next_raw_batch(self, limit: int, head: str, tail: str) -> tuple[list[Key], bytes]:
        """The oldest pending records as keys, and a body: their stored JSON joined with
        commas between `head` and `tail`, made by SQLite as one bytes object instead of a
        Python object per record. One read transaction: keys and body hold the same records."""
        self.conn.execute("BEGIN")
        try:
            keys = [Key(*r) for r in self.conn.execute(
                "SELECT d.seq, r.record_id FROM delivery d JOIN records r ON r.seq = d.seq "
                "WHERE d.status = 'pending' ORDER BY d.seq LIMIT ?", [limit])]
            body = self.conn.execute(
                "SELECT CAST(? || group_concat(json, ',') || ? AS BLOB) FROM (SELECT r.json "
                "FROM delivery d JOIN records r ON r.seq = d.seq WHERE d.status = 'pending' "
                "ORDER BY d.seq LIMIT ?)", [head, tail, limit]).fetchone()[0] if keys else b""
        finally:
            self.conn.execute("COMMIT")
        return keys, body

    def mark(self, outcomes: Iterable[tuple[int, str, Optional[str]]], tries: int, at: str) -> None:
        """Record the central system's answer for a batch, in one transaction."""
        outcomes = list(outcomes)
        delivered = [seq for seq, status, _ in outcomes if status == "delivered"]
        with self._write() as conn:
            # delivered rows in one statement (most of a batch); the rare others one by one
            conn.execute("UPDATE delivery SET status = 'delivered', error = NULL, "
                         "attempts = attempts + ?, updated_at = ? "
                         "WHERE seq IN (SELECT value FROM json_each(?))",
                         [tries, at, json.dumps(delivered)])
            conn.executemany("UPDATE delivery SET status = ?, error = ?, attempts = attempts + ?, "
                             "updated_at = ? WHERE seq = ?",
                             [(status, error, tries, at, seq) for seq, status, error in outcomes
                              if status != "delivered"])
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('last_upload_at', ?)", [at])

    def pending_keys(self, limit: int) -> list[Key]:
        """The oldest pending rows' keys, read from the delivery table first (when the
        records' pages cannot be read, the keys still say which rows to look at)."""
        seqs = [r[0] for r in self.conn.execute(
            "SELECT seq FROM delivery WHERE status = 'pending' ORDER BY seq LIMIT ?", [limit])]
        keys = []
        for seq in seqs:
            try:
                row = self.conn.execute("SELECT record_id FROM records WHERE seq = ?", [seq]).fetchone()
            except sqlite3.DatabaseError:
                row = None
            keys.append(Key(seq, row[0] if row else ""))
        return keys

    def stored_json(self, seq: int) -> bytes:
        """One row's stored JSON as bytes; sqlite3.DatabaseError when it cannot be read."""
        row = self.conn.execute("SELECT CAST(json AS BLOB) FROM records WHERE seq = ?", [seq]).fetchone()
        if row is None or row[0] is None:
            raise sqlite3.DatabaseError(f"record {seq} has no stored JSON")
        return bytes(row[0])

    def park(self, rows: Iterable[tuple[int, str]], at: str) -> None:
        """Set rows aside that cannot be sent as they are (unreadable, not matching their
        hash): status `parked` with the reason; the rows behind them go on."""
        with self._write() as conn:
            conn.executemany("UPDATE delivery SET status = 'parked', error = ?, updated_at = ? "
                             "WHERE seq = ? AND status = 'pending'",
                             [(error[:500], at, seq) for seq, error in rows])

    # --- what the status, heartbeat and metrics show ---------------------------------

    def sync_view(self) -> dict:
        return store.sync_view(self.conn)

    def schema_repair(self) -> Optional[dict]:
        return store.schema_repair(self.conn)

    def totals(self) -> dict:
        """Record counts by delivery status and by kind/level (for the metrics)."""
        by = dict(self.conn.execute("SELECT status, count(*) FROM delivery GROUP BY status").fetchall())
        ratings = self.conn.execute("SELECT kind, level, count(*) FROM records "
                                    "GROUP BY kind, level").fetchall()
        return {"delivered": by.get("delivered", 0), "pending": by.get("pending", 0),
                "rejected": by.get("rejected", 0), "ratings": ratings}

    # --- clock corrections -----------------------------------------------------------

    def correction_candidates(self, boot_id: str, limit: int) -> list[Candidate]:
        rows = self.conn.execute(
            "SELECT r.seq, r.record_id, r.kind, r.invited_at, r.rated_at, r.mono_ms "
            "FROM records r JOIN delivery d ON d.seq = r.seq "
            "LEFT JOIN corrections c ON c.seq = r.seq "
            "WHERE r.clock_synced = 0 AND r.boot_id = ? AND d.status = 'delivered' "
            "AND c.seq IS NULL ORDER BY r.seq LIMIT ?", [boot_id, limit]).fetchall()
        return [Candidate(*r) for r in rows]

    def uncorrectable(self, boot_id: str) -> int:
        """Records made with an unsynchronised clock in an earlier boot: their monotonic
        time has no known relation to real time any more."""
        return self.conn.execute("SELECT count(*) FROM records WHERE clock_synced = 0 "
                                 "AND boot_id != ?", [boot_id]).fetchone()[0]

    def mark_corrections(self, rows: Iterable[tuple], at: str) -> None:
        """rows: (seq, invited_at, rated_at, basis, status, error)."""
        with self._write() as conn:
            conn.executemany("INSERT OR REPLACE INTO corrections (seq, invited_at, rated_at, basis, "
                             "status, error, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                             [(*row, at) for row in rows])

    # --- central config ----------------------------------------------------------------

    def central_config(self) -> Optional[tuple[Optional[str], dict]]:
        return store.central_config(self.conn)

    def save_central_config(self, etag: Optional[str], body: str, at: str) -> None:
        with self._write() as conn:
            conn.execute("INSERT OR REPLACE INTO central_config (id, etag, body, fetched_at) "
                         "VALUES (1, ?, ?, ?)", [etag, body, at])

    def close(self) -> None:
        conn, self.conn = getattr(self, "conn", None), None
        if conn is not None:
            conn.close()
