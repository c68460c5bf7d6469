"""The device database's schema: the tables, indexes and triggers of each version, and
how to tell what an existing file lacks of them.

Apart from terminal/store.py (which runs the migrations and the repairs in its
transactions) so that the SQL that makes the schema reads in one place, oldest version
first, and the store's module holds the connection and the write path. Every function
here takes anything with `execute` (a sqlite3 connection or a store.Database).
"""
from __future__ import annotations

import json
import sqlite3
from typing import Any, Callable

from terminal import records as rec

SCHEMA_VERSION = 5
# the record columns stored as integers (the rest of a record's fields are TEXT)
BOOL_COLUMNS = ("tags_missing", "clock_synced", "real_name")
INT_COLUMNS = ("seq", "level", "score", "assess_number", "mono_ms")


def _create_v1(db) -> None:
    # (the SQL sqlite_utils wrote for the first stores, kept word for word: a store made
    # now has the same schema as one made then)
    columns = []
    for name in rec.FIELDS[:3] + ("seq",) + rec.FIELDS[4:] + ("json",):
        kind = "INTEGER" if name in INT_COLUMNS + BOOL_COLUMNS else "TEXT"
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
    _append_only(db)


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


# The records' columns from schema 5 on: the JSON as signed, and beside it only what a
# query looks up or counts, small ones first: they fit in the part of the row kept in
# its b-tree page (the JSON goes on to an overflow page), so the tail, the counts and
# the lookups read no overflow page.
COLUMNS = ("kind", "level", "clock_synced", "visit_id", "project_no", "boot_id", "record_id",
           "hash", "json")
_RECORDS_V5 = ('CREATE TABLE "records" (seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, '
               'level INTEGER, clock_synced INTEGER NOT NULL, visit_id TEXT, project_no TEXT, '
               'boot_id TEXT NOT NULL, record_id TEXT NOT NULL, hash TEXT NOT NULL, '
               'json TEXT NOT NULL)')


def _append_only(db) -> None:
    for op in ("UPDATE", "DELETE"):
        db.execute(f"CREATE TRIGGER records_no_{op.lower()} BEFORE {op} ON records "
                   f"BEGIN SELECT RAISE(ABORT, 'records are append-only'); END")


def _light_commit_v5(db) -> None:
    """Fewer pages written per rating (SD cards wear by the bytes written; each page a
    commit touches is written whole into the WAL, and the commit's fsync writes each
    4 KiB block it reaches):

    - The record once: its JSON as signed, with only the columns queries use (COLUMNS);
      a row of half the size, so a b-tree page holds several and the table's root is
      rarely written. The other fields are read from the JSON where a listing needs them.
    - A record's delivery row is made by the agent, not in the rating's commit: records
      after the last delivery row are pending (sync_state.TAIL), and the agent adopts
      them into the table, many at once, before it sends them (sync_state.adopt).
    - The delivery row carries the record's kind and level, so the metrics count a table
      of small rows instead of keeping an index of the records for it.
    - No index on record_id: ids are random UUIDs made by the store (unique by
      construction), and only the technician's `pingjia outbox show ID` looks one up.
    - The index of records made with an unsynchronised clock keys on the first 8
      characters of the boot id (random hex: two boots sharing them is a 1 in 4 billion
      chance, and the queries compare the whole id as well): small entries, few page splits.

    A store of an older schema is copied into the new table once, in this transaction.
    """
    db.execute(_RECORDS_V5.replace('"records"', '"records_v5"'))
    db.execute(f"INSERT INTO records_v5 (seq, {', '.join(COLUMNS)}) "
               f"SELECT seq, {', '.join(COLUMNS)} FROM records ORDER BY seq")
    db.execute("DROP TABLE records")  # (its indexes and triggers with it)
    db.execute("ALTER TABLE records_v5 RENAME TO records")
    for name in ("visit_id", "project_no"):
        db.execute(f'CREATE INDEX "idx_records_{name}" ON "records" ("{name}")')
    db.execute(f"CREATE INDEX records_unsynced ON records({UNSYNCED_KEY}, seq) "
               f"WHERE clock_synced = 0")
    _append_only(db)
    db.execute("ALTER TABLE delivery ADD COLUMN kind TEXT")
    db.execute("ALTER TABLE delivery ADD COLUMN level INTEGER")
    db.execute("UPDATE delivery SET (kind, level) = "
               "(SELECT r.kind, r.level FROM records r WHERE r.seq = delivery.seq)")


# the key of records_unsynced (a query that should use the index says the same)
UNSYNCED_KEY = "substr(boot_id, 1, 8)"


# the migrations that make a table anew (store.migrate turns foreign keys off around them)
REBUILDS = frozenset({5})
MIGRATIONS: dict[int, Callable[[Any], None]] = {
    1: _create_v1, 2: _sync_v2, 3: _open_visits_v3, 4: _small_open_visits_v4,
    5: _light_commit_v5}


def schema_version(db) -> int:
    return db.execute("PRAGMA user_version").fetchone()[0]


SCHEMA_REPAIR_KEY = "schema_restored"


def schema_repair(db) -> dict | None:
    """The last repair of the schema at start ({"at", "restored": [...]}), or None."""
    row = db.execute("SELECT value FROM meta WHERE key = ?", [SCHEMA_REPAIR_KEY]).fetchone()
    return json.loads(row[0]) if row else None


def _reference_schema() -> dict[str, tuple[str, str]]:
    """name -> (type, sql) of every table, index and trigger the migrations make."""
    db = sqlite3.connect(":memory:", isolation_level=None)
    try:
        for target in sorted(MIGRATIONS):
            MIGRATIONS[target](db)
        return {name: (kind, sql) for kind, name, sql in db.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL")}
    finally:
        db.close()


# Tables that may be made again empty if missing: nothing signed or sent lives in them
# for long (an open visit lost with its table is found by the chain's receiver as a gap
# in what the business system was told, not hidden here).
RESTORABLE_TABLES = ("central_config", "corrections", "open_visits")


def _same_sql(a: str, b: str) -> bool:
    return " ".join(a.split()) == " ".join(b.split())


def missing_parts(db) -> tuple[list[str], list[tuple[str, str | None, str]]]:
    """What the schema of `db` lacks of what the migrations make: (lost, todo).

    lost: tables that hold records or their state and are gone (nothing can bring them
    back). todo: (what, drop or None, create) for each missing table that can be made
    again empty, missing index and missing or altered trigger, in the order they must
    be made (tables, then indexes, then triggers: each may need the one before).
    """
    want = _reference_schema()
    have = {name: (kind, sql) for kind, name, sql in db.execute(
        "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL")}
    missing_tables = [n for n, (kind, _) in want.items() if kind == "table" and n not in have]
    lost = [n for n in missing_tables if n not in RESTORABLE_TABLES]
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
    order = {"table": 0, "index": 1, "trigger": 2}
    todo.sort(key=lambda t: order[t[0].split()[0]])
    return lost, todo
