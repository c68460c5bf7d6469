"""The agent's side of the store: read pending records batch by batch, mark the answers.

The statements are terminal/sync_state.py's; this holds the agent's connection and
which of them go together in one transaction. A plain sqlite3 connection in autocommit
mode. Reads run as single statements that are
fetched completely, so no read transaction is ever open while the agent waits on the
network; writes are one short `BEGIN IMMEDIATE` transaction per answer (the terminal's
appends wait at most that long, and busy_timeout covers it).
"""
from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Iterable, NamedTuple, Optional

from terminal import store, store_schema, sync_state

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


# The agent reads each record once, in seq order: a page cache holds little it reads
# again (the upper pages of two indexes), and 512 KiB of it would be resident for good.
CACHE_KIB = 64


class Outbox:
    def __init__(self, path: str | Path, *, device_id: str, hash_alg: str):
        path = Path(path)
        if not path.exists():
            raise store.StorageError(f"no database at {path}: the terminal creates it on its "
                                     f"first start (check device.data_dir)")
        try:
            # Its own commits need not wait for the disk: a mark lost to a power cut only
            # means the batch goes again and is answered `duplicate`. Per connection: the
            # terminal's appends stay synchronous=FULL, and their fsync of the WAL covers
            # any earlier frame of ours.
            self.conn = store.connect(path, synchronous="NORMAL", cache_kib=CACHE_KIB).conn
            version = store_schema.schema_version(self.conn)
            if version == 0:
                raise store.StorageError(f"{path} holds no records store yet: start the terminal first")
            if version < store.SCHEMA_VERSION:
                store.migrate(self.conn)  # the terminal does the same; migrate() is race-safe
            elif version > store.SCHEMA_VERSION:
                raise store.StorageError(f"database schema {version} in {path} is newer than this "
                                         f"software ({store.SCHEMA_VERSION}); install the newer version")
            meta = store.meta(self.conn)
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

    def adopt(self, limit: int, upto: Optional[int] = None) -> int:
        """Give the oldest `limit` records the terminal stored since the last call (up to
        seq `upto`) their delivery rows: the terminal writes none itself (fewer pages per
        rating). How many; the write lock is taken only when there are some."""
        if not sync_state.tail_rows(self.conn, 1, upto):
            return 0
        try:
            with self._write() as conn:
                return sync_state.adopt_tail(conn, limit, upto)
        except sqlite3.OperationalError:  # busy, locked, I/O: not a damaged row
            raise
        except sqlite3.DatabaseError:  # a damaged page in the tail: its keys alone
            rows = sync_state.tail_rows(self.conn, limit, upto)
            with self._write() as conn:
                return sync_state.adopt(conn, rows)

    def next_batch(self, limit: int) -> list[Row]:
        """The oldest pending records (from the partial index on pending delivery rows)."""
        self.adopt(limit)
        return [Row(*r) for r in sync_state.pending_rows(self.conn, limit)]

    def next_raw_batch(self, limit: int, head: str, tail: str) -> tuple[list[Key], bytes]:
        """The oldest pending records as keys, and a body: their stored JSON joined with
        commas between `head` and `tail`, in one buffer instead of a Python object per
        record (sync_state.pending_batch)."""
        self.adopt(limit)
        keys, body = sync_state.pending_batch(self.conn, limit, head, tail)
        return [Key(*k) for k in keys], body

    def mark(self, outcomes: Iterable[tuple[int, str, Optional[str]]], tries: int, at: str) -> None:
        """Record the central system's answer for a batch, in one transaction."""
        outcomes = list(outcomes)
        if outcomes:  # (an answer for a record of the tail: its row first)
            upto = max(seq for seq, _, _ in outcomes)
            self.adopt(upto, upto)
        with self._write() as conn:
            sync_state.mark(conn, outcomes, tries, at)

    def pending_keys(self, limit: int) -> list[Key]:
        """The oldest pending rows' keys, read from the delivery table first (when the
        records' pages cannot be read, the keys still say which rows to look at)."""
        self.adopt(limit)
        keys = []
        for seq in sync_state.pending_seqs(self.conn, limit):
            try:
                record_id = sync_state.record_id(self.conn, seq)
            except sqlite3.DatabaseError:
                record_id = None
            keys.append(Key(seq, record_id or ""))
        return keys

    def stored_json(self, seq: int) -> bytes:
        """One row's stored JSON as bytes; sqlite3.DatabaseError when it cannot be read."""
        return sync_state.stored_json(self.conn, seq)

    def park(self, rows: Iterable[tuple[int, str]], at: str) -> None:
        """Set rows aside that cannot be sent as they are (unreadable, not matching their
        hash): status `parked` with the reason; the rows behind them go on."""
        rows = list(rows)
        if rows:
            upto = max(seq for seq, _ in rows)
            self.adopt(upto, upto)
        with self._write() as conn:
            sync_state.park(conn, rows, at)

    # --- what the status, heartbeat and metrics show ---------------------------------

    def sync_view(self) -> dict:
        return sync_state.sync_view(self.conn)

    def schema_repair(self) -> Optional[dict]:
        return store_schema.schema_repair(self.conn)

    def totals(self) -> dict:
        """Record counts by delivery status (every one of store_schema.DELIVERY_STATUSES)
        and, under "ratings", (kind, level, count) rows (for the metrics)."""
        return {**sync_state.status_counts(self.conn),
                "ratings": sync_state.kind_level_counts(self.conn)}

    # --- clock corrections -----------------------------------------------------------

    def correction_candidates(self, boot_id: str, limit: int) -> list[Candidate]:
        return [Candidate(*r) for r in sync_state.correction_candidates(self.conn, boot_id, limit)]

    def uncorrectable(self, boot_id: str) -> int:
        """Records made with an unsynchronised clock in an earlier boot: their monotonic
        time has no known relation to real time any more."""
        return sync_state.uncorrectable(self.conn, boot_id)

    def mark_corrections(self, rows: Iterable[tuple], at: str) -> None:
        """rows: (seq, invited_at, rated_at, basis, status, error)."""
        with self._write() as conn:
            sync_state.mark_corrections(conn, rows, at)

    # --- central config ----------------------------------------------------------------

    def central_config(self) -> Optional[tuple[Optional[str], dict]]:
        return sync_state.central_config(self.conn)

    def save_central_config(self, etag: Optional[str], body: str, at: str) -> None:
        with self._write() as conn:
            sync_state.save_central_config(conn, etag, body, at)

    def close(self) -> None:
        conn, self.conn = getattr(self, "conn", None), None
        if conn is not None:
            conn.close()
