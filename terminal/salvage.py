"""Integrity check at start, and salvage of a damaged database.

SD cards die from writes and power cuts. Before the store opens, the terminal runs
`PRAGMA integrity_check` on the database. `quick_check` is not enough here: it skips
comparing the indexes with the tables, and the one-rating-per-business rule and the
visit look-ups answer from indexes (`project_no`, `visit_id`), so an index that
disagrees with its table could let a business be rated twice. The full check reads
every page once; it runs once per start. (`pingjia doctor` uses the quick check: it
only reports.)

A damaged database is never repaired in place and never deleted:

1. the records still readable are copied, row by row, into a fresh database built
   beside it (`pingjia.db.salvage`). Each record keeps its seq, hash and signature:
   nothing is sealed again, so the chain stays verifiable, and a lost record shows as
   a gap the central system reports. A record whose stored JSON no longer matches its
   own hash is not readable and stays behind. Delivery status is copied; a record
   whose status is lost counts as not yet sent (the central system answers a second
   copy with "duplicate", which counts as delivered);
2. the damaged file and its -wal/-shm are renamed `pingjia.db.damaged-<UTC time>`
   (-wal/-shm after it, so the three still open together for later analysis);
3. the fresh database takes the name `pingjia.db`.

With records salvaged, the chain goes on (same `chain_id`, the next seq). With none,
the fresh database has no chain: the store starts a new one, which the central system
sees as a reset. Either way the event is logged at ERROR, written to the new
database's `meta` table (key `salvaged_from`) and returned, so that GET /v1/status
shows it.
"""
from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional

from terminal.salvage_read import (READING, SIDE_FILES, open_read_only, read_meta,
                                   read_open_visits, read_records, read_table, readable_copy,
                                   remove_files, seq_tables)
from terminal.store import StorageError, insert_record, migrate

log = logging.getLogger("pingjia.terminal")

DAMAGED = ".damaged-"
BUILDING = ".salvage"
META_KEY = "salvaged_from"
PROGRESS_EVERY = 2000
_DAMAGE_CODES = ("SQLITE_CORRUPT", "SQLITE_NOTADB")
_DAMAGE_WORDS = ("malformed", "not a database", "corrupt")


@dataclass(frozen=True)
class Salvage:
    """What happened to a damaged database."""
    at: str                 # UTC, ISO 8601
    damaged_file: str       # where the damaged database now lies
    problem: str            # what the integrity check said (first lines)
    salvaged: int           # records copied into the fresh database
    pending: int            # of those, not yet delivered
    lost: int               # records known to have existed that could not be read
    lost_seqs: str          # their seq ranges, e.g. "41-57, 90"
    chain_id: Optional[str]  # the chain that goes on; None: a new chain starts
    elapsed_ms: int

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        if self.chain_id is None:
            outcome = "nothing could be read: a new chain starts"
        else:
            outcome = (f"{self.salvaged} records salvaged ({self.pending} not yet sent), "
                       f"{self.lost} lost" + (f" (seq {self.lost_seqs})" if self.lost else "")
                       + f"; chain {self.chain_id} goes on")
        return f"database damaged ({self.problem}); set aside as {self.damaged_file}; {outcome}"


def _is_damage(exc: sqlite3.Error) -> bool:
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name:
        return name.startswith(_DAMAGE_CODES)  # extended codes too: SQLITE_CORRUPT_INDEX
    return any(word in str(exc).lower() for word in _DAMAGE_WORDS)  # Python < 3.11


def integrity_problems(path: Path, quick: bool = False, limit: int = 20) -> list[str]:
    """What `PRAGMA integrity_check` (or `quick_check`) says is wrong; [] when intact.

    Damage the check cannot even start on (not a database, a mangled header) comes
    back as one problem. Errors that are not damage (permission, I/O, locked) raise
    StorageError: the file may be fine, so it must not be touched.
    """
    pragma = "quick_check" if quick else "integrity_check"
    try:
        conn = open_read_only(Path(path))
        try:
            rows = conn.execute(f"PRAGMA {pragma}({int(limit)})").fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        if _is_damage(exc):
            return [str(exc)]
        raise StorageError(f"cannot check {path}: {exc}") from exc
    problems = [str(r[0]) for r in rows]
    return [] if problems == ["ok"] else problems


def ensure_intact(path: str | Path, *, hash_alg: str,
                  now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                  progress: Optional[Callable[[str], None]] = None) -> Optional[Salvage]:
    """Check the database before the store opens it; salvage it if damaged.

    Returns None when there is nothing to do (intact, or no database yet). `progress`
    hears what is going on every few thousand records: a salvage of a large database
    takes minutes on a Pi, and the service tells systemd it is still starting
    (EXTEND_TIMEOUT_USEC) instead of being killed half-way.
    """
    tell = progress or (lambda text: None)
    path = Path(path)
    _finish_interrupted(path)
    if not path.exists() or path.stat().st_size == 0:
        return None
    started = time.monotonic()
    tell("checking the database")
    problems = integrity_problems(path)
    if not problems:
        return None
    problem = "; ".join(problems[:3])
    log.error("integrity check of %s failed: %s", path, problem)
    try:
        return _salvage(path, problem, hash_alg, now(), started, tell)
    except (OSError, sqlite3.Error) as exc:
        raise StorageError(f"the database {path} is damaged ({problem}) and salvaging it "
                           f"failed: {exc}; free some space or replace the SD card, then "
                           "restart the service") from exc


def _finish_interrupted(path: Path) -> None:
    """A salvage stopped between its two renames: finish it, or drop a half-built copy."""
    remove_files(path.with_name(path.name + READING))
    building = path.with_name(path.name + BUILDING)
    if not building.exists():
        return
    if not path.exists() and _completed(building):
        # a -wal left beside the missing file would be replayed into the copy: move it
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        for suffix in SIDE_FILES:
            side = Path(str(path) + suffix)
            if side.exists():
                os.replace(side, path.with_name(f"{path.name}{DAMAGED}{stamp}-orphan{suffix}"))
        os.replace(building, path)
        _fsync_dir(path.parent)
        log.error("finished an interrupted salvage of %s", path)
        return
    remove_files(building)


def _completed(building: Path) -> bool:
    try:
        conn = open_read_only(building)
        try:
            return conn.execute("SELECT 1 FROM meta WHERE key = ?", [META_KEY]).fetchone() is not None
        finally:
            conn.close()
    except sqlite3.Error:
        return False


# --- the salvage -------------------------------------------------------------------

def _salvage(path: Path, problem: str, hash_alg: str, when: datetime, started: float,
             tell: Callable[[str], None]) -> Salvage:
    copy = readable_copy(path)
    try:
        conn = open_read_only(copy)
        try:
            meta = read_meta(conn)
            meta.pop(META_KEY, None)  # a salvage's report is not carried over
            alg = meta.get("hash_alg", hash_alg)
            found, known_max = read_records(conn, alg, tell, PROGRESS_EVERY)
            tables = {name: read_table(conn, name, set(found)) for name in seq_tables(conn)}
            opened = read_open_visits(conn)
        finally:
            conn.close()
    finally:
        remove_files(copy)

    stamp = when.astimezone(timezone.utc)
    damaged = _damaged_name(path, stamp)
    lost = sorted(set(range(1, max([known_max, *found], default=0) + 1)) - set(found))
    chain_id = None
    if found:
        last = found[max(found)]
        meta.setdefault("chain_id", last["chain_id"])
        meta.setdefault("device_id", last["device_id"])
        meta.setdefault("hash_alg", alg)
        chain_id = meta["chain_id"]
    else:
        meta = {}  # no chain to continue: the store starts a new one

    def report(pending: int) -> Salvage:
        return Salvage(at=stamp.strftime("%Y-%m-%dT%H:%M:%SZ"), damaged_file=str(damaged),
                       problem=problem[:300], salvaged=len(found), pending=pending,
                       lost=len(lost), lost_seqs=_ranges(lost), chain_id=chain_id,
                       elapsed_ms=int((time.monotonic() - started) * 1000))

    building = path.with_name(path.name + BUILDING)
    result = _build(building, found, tables, meta, report, tell, opened)
    # set the damaged files aside, then put the fresh database in their place
    for suffix in SIDE_FILES:
        side = Path(str(path) + suffix)
        if side.exists():
            os.replace(side, Path(str(damaged) + suffix))
    os.replace(path, damaged)
    os.replace(building, path)
    _fsync_dir(path.parent)
    log.error("%s", result.summary())
    return result


def _damaged_name(path: Path, stamp: datetime) -> Path:
    base = path.with_name(f"{path.name}{DAMAGED}{stamp.strftime('%Y%m%dT%H%M%SZ')}")
    candidate, n = base, 1
    while candidate.exists():
        candidate, n = Path(f"{base}.{n}"), n + 1
    return candidate


def _build(building: Path, found: dict, tables: dict, meta: dict, report, tell,
           opened: list = ()) -> Salvage:
    remove_files(building)
    conn = sqlite3.connect(str(building), isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = DELETE")  # one file, ready to rename
        conn.execute("PRAGMA synchronous = FULL")
        migrate(conn)
        conn.execute("BEGIN IMMEDIATE")
        for n, seq in enumerate(sorted(found), 1):
            insert_record(conn, found[seq])
            if n % PROGRESS_EVERY == 0:
                tell(f"salvaging the damaged database: {n} of {len(found)} records copied")
        for table, (columns, rows) in tables.items():
            _copy_rows(conn, table, columns, rows)
        conn.executemany("INSERT OR IGNORE INTO open_visits (visit_id, opened_at, drafts) "
                         "VALUES (?, ?, ?)", opened)
        # a record whose delivery row is lost (or garbled) is sent again
        conn.executemany("INSERT OR IGNORE INTO delivery (seq, status, attempts, kind, level) "
                         "VALUES (?, 'pending', 0, ?, ?)",
                         [(seq, r.get("kind"), r.get("level")) for seq, r in found.items()])
        # (rows copied from a store older than schema 5 have no kind and level yet)
        conn.executemany("UPDATE delivery SET kind = ?, level = ? WHERE seq = ? AND kind IS NULL",
                         [(r.get("kind"), r.get("level"), seq) for seq, r in found.items()])
        for key, value in meta.items():
            conn.execute("INSERT INTO meta (key, value) VALUES (?, ?)", [key, value])
        pending = conn.execute("SELECT count(*) FROM delivery WHERE status = 'pending'").fetchone()[0]
        result = report(pending)
        # written last: its presence marks a complete copy
        conn.execute("INSERT INTO meta (key, value) VALUES (?, ?)",
                     [META_KEY, json.dumps(result.as_dict(), ensure_ascii=False)])
        conn.execute("COMMIT")
    finally:
        conn.close()
    fd = os.open(building, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return result


def _copy_rows(conn, table: str, columns: list, rows: list) -> None:
    try:
        known = {c[1] for c in conn.execute(f'PRAGMA table_info("{table}")')}
    except sqlite3.Error:
        return
    if not known:  # a table this version does not have
        return
    keep = [i for i, c in enumerate(columns) if c in known]
    sql = (f'INSERT OR IGNORE INTO "{table}" ({", ".join(columns[i] for i in keep)}) '
           f'VALUES ({", ".join("?" for _ in keep)})')
    for row in rows:
        try:  # a garbled row (a status the schema refuses) is left out on its own
            conn.execute(sql, [row[i] for i in keep])
        except sqlite3.Error:
            log.warning("salvage: a %s row for seq %s could not be copied", table, row[columns.index("seq")])


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _ranges(seqs: list) -> str:
    parts, start, prev = [], None, None
    for s in seqs + [None]:
        if start is not None and (s is None or s != prev + 1):
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = None
        if s is not None and start is None:
            start = s
        prev = s
    text = ", ".join(parts)
    return text if len(text) <= 200 else text[:200] + "…"


def last_salvage(path: str | Path) -> Optional[dict]:
    """The salvage report kept in a database's meta table, if any (read-only)."""
    try:
        conn = open_read_only(Path(path))
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", [META_KEY]).fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    return json.loads(row[0]) if row else None
