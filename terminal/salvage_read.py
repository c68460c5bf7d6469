"""Reading what is left of a damaged database, for terminal/salvage.py.

Apart from the salvage's steps (check, build, rename) because this part deals with
SQLite's file format and its errors: a copy to read from (the damaged file is never
opened for writing), a header mended so that SQLite reads the file at all, and every
row still readable, by scan and then by key where a scan breaks off.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
from pathlib import Path
from typing import Optional

from terminal import records as rec

log = logging.getLogger("pingjia.terminal")

SIDE_FILES = ("-wal", "-shm", "-journal")
MAGIC = b"SQLite format 3\0"
READING = ".salvage-read"
# seqs probed one by one past the last row a scan reached (a bound against garbage)
MAX_PROBE = 1_000_000


def open_read_only(path: Path) -> sqlite3.Connection:
    # read-only: a damaged file is never written to (no checkpoint either)
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None,
                           timeout=10, check_same_thread=False)


def readable_copy(path: Path) -> Path:
    """A copy of the damaged database (and its -wal) to read from.

    The original stays exactly as it was found. In the copy, a header that counts more
    pages than the file holds (a truncated file) is made to fit: otherwise SQLite
    refuses to read even the schema.
    """
    copy = path.with_name(path.name + READING)
    remove_files(copy)
    shutil.copyfile(path, copy)
    wal = Path(str(path) + "-wal")
    if wal.exists():
        shutil.copyfile(wal, str(copy) + "-wal")
    with open(copy, "r+b") as f:
        header = f.read(100)
        page_size = _page_size(header)
        if len(header) == 100 and header.startswith(MAGIC) and page_size:
            pages = os.fstat(f.fileno()).st_size // page_size
            if int.from_bytes(header[28:32], "big") > pages:
                f.seek(28)
                f.write(pages.to_bytes(4, "big"))
            return copy
    _mend_header(copy, wal.exists())
    return copy


def _page_size(header: bytes) -> int:
    """The page size a header states, or 0 if the header is too garbled to say."""
    if len(header) < 100:
        return 0
    size = int.from_bytes(header[16:18], "big")
    size = 65536 if size == 1 else size
    return size if 512 <= size <= 65536 and size & (size - 1) == 0 else 0


def _mend_header(copy: Path, wal: bool) -> None:
    """Give a copy whose 100-byte header is garbage a plausible one.

    Everything the header holds that matters for reading can be rebuilt: the page size
    (tried, most likely first, until the schema reads), the page count (from the file
    size), the text encoding (the store writes UTF-8). The schema's b-tree starts right
    after the header on page 1, so records usually come back whole.
    """
    size = copy.stat().st_size
    with open(copy, "r+b") as f:
        original = f.read(100)
        for page_size in (4096, 1024, 2048, 8192, 16384, 32768, 65536, 512):
            if size < page_size:
                continue
            version = 2 if wal else 1
            header = (MAGIC + (1 if page_size == 65536 else page_size).to_bytes(2, "big")
                      + bytes([version, version, 0, 64, 32, 32]) + (1).to_bytes(4, "big")
                      + (size // page_size).to_bytes(4, "big") + bytes(8)
                      + (1).to_bytes(4, "big") + (4).to_bytes(4, "big") + bytes(8)
                      + (1).to_bytes(4, "big") + bytes(32) + (1).to_bytes(4, "big")
                      + _version_number().to_bytes(4, "big"))
            f.seek(0)
            f.write(header)
            f.flush()
            if _schema_reads(copy):
                log.warning("salvage: the database header was garbage; read with a rebuilt "
                            "one (page size %d)", page_size)
                return
        f.seek(0)
        f.write(original)


def _version_number() -> int:
    major, minor, patch = sqlite3.sqlite_version_info
    return major * 1_000_000 + minor * 1000 + patch


def _schema_reads(copy: Path) -> bool:
    try:
        conn = open_read_only(copy)
        try:
            return conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'records'"
                                ).fetchone()[0] == 1
        finally:
            conn.close()
    except sqlite3.Error:
        return False


def remove_files(path: Path) -> None:
    """A database file and its side files, where they are."""
    for suffix in ("",) + SIDE_FILES:
        Path(str(path) + suffix).unlink(missing_ok=True)


def read_meta(conn) -> dict:
    """The meta table as far as it reads: whole, or the chain's keys one by one."""
    try:
        return {str(k): str(v) for k, v in conn.execute("SELECT key, value FROM meta")}
    except sqlite3.Error:
        pass
    meta = {}
    for key in ("chain_id", "hash_alg", "device_id"):
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        except sqlite3.Error:
            continue
        if row is not None:
            meta[key] = str(row[0])
    return meta


def _record_of(seq, text, alg) -> Optional[dict]:
    """The record of a row, if its JSON is intact: it must still match its own hash."""
    try:
        record = json.loads(text)
        if record.get("seq") == seq and record.get("hash") == rec.record_hash(record, alg):
            return record
    except (TypeError, ValueError):
        pass
    return None


def read_records(conn, alg, tell, every: int) -> tuple[dict, int]:
    """Every readable record by seq, and the highest seq known to have existed.

    A scan in seq order first; where it breaks off, each remaining seq is looked up by
    its key (the B-tree path to other pages may still be sound).
    """
    found: dict[int, dict] = {}
    try:
        for seq, text in conn.execute("SELECT seq, json FROM records ORDER BY seq"):
            record = _record_of(seq, text, alg)
            if record is not None:
                found[seq] = record
                if len(found) % every == 0:
                    tell(f"salvaging the damaged database: {len(found)} records read")
    except sqlite3.Error:
        pass
    scanned = max(found, default=0)
    known = scanned
    for sql in ("SELECT max(seq) FROM records", "SELECT max(seq) FROM delivery",
                "SELECT seq FROM records INDEXED BY idx_records_visit_id"):
        try:
            for (value,) in conn.execute(sql):
                if isinstance(value, int) and value <= scanned + MAX_PROBE:
                    known = max(known, value)
        except sqlite3.Error:
            pass
    for seq in range(1, known + 1):
        if seq % every == 0:
            tell(f"salvaging the damaged database: looking for record {seq} of {known}")
        if seq in found:
            continue
        try:
            row = conn.execute("SELECT json FROM records WHERE seq = ?", [seq]).fetchone()
        except sqlite3.Error:
            continue
        record = _record_of(seq, row[0], alg) if row else None
        if record is not None:
            found[seq] = record
    return found, known


def seq_tables(conn) -> list[str]:
    """The tables that hang off records by seq (delivery, corrections, ...)."""
    try:
        names = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        return [n for n in names if n not in ("records", "meta")
                and "seq" in [c[1] for c in conn.execute(f'PRAGMA table_info("{n}")')]]
    except sqlite3.Error:
        return ["delivery"]


def read_table(conn, table: str, seqs: set) -> tuple[list, list]:
    """(columns, rows) of the salvaged seqs' rows; a scan, then look-ups where it broke."""
    rows: dict = {}
    columns: list = []
    try:
        cur = conn.execute(f'SELECT * FROM "{table}"')
        columns = [d[0] for d in cur.description]
        at = columns.index("seq")
        for row in cur:
            if row[at] in seqs:
                rows[row[at]] = row
    except (sqlite3.Error, ValueError):
        for seq in sorted(seqs - set(rows)):
            try:
                cur = conn.execute(f'SELECT * FROM "{table}" WHERE seq = ?', [seq])
                columns, row = [d[0] for d in cur.description], cur.fetchone()
            except sqlite3.Error:
                continue
            if row is not None:
                rows[seq] = row
    return columns, list(rows.values())


def read_open_visits(conn) -> list:
    """The invitations open when the database was damaged: they still end as records."""
    try:
        return conn.execute("SELECT visit_id, opened_at, drafts FROM open_visits").fetchall()
    except sqlite3.Error:
        return []
