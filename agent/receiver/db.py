"""The receiver's own SQLite store (WAL): devices, records, corrections, heartbeats.

Records are kept exactly as received and never edited: the canonical form that the hash
covers, with the hash and sig beside it; corrections sit beside them too. Refused records are kept apart, with the reason,
so that an edited record shows in the chain report although it is not stored.

One connection behind a lock serves all threads: SQLite writes one transaction at a time
anyway, and a batch is one transaction (one fsync), which is what makes 500-record
batches fast.
"""
from __future__ import annotations

import json
import re
import secrets
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Mapping, NamedTuple, Optional

import sqlite_utils

from agent.receiver import chain
from agent.receiver.contract import check
from terminal.records import HASH_ALGS
from terminal.store import open_connection, write_transaction

SCHEMA_VERSION = 1
DEVICE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MIN_SECRET_BYTES = 16
CORRECTION = check("Correction")


class ReceiverError(Exception):
    """A problem the operator fixes: bad device entry, newer database, unreadable file."""


class Device(NamedTuple):
    device_id: str
    secret: bytes
    hash_alg: str


def canonical_text(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def result(record_id: str, status: str, error: Optional[str] = None) -> dict:
    out = {"record_id": record_id, "status": status}
    if error is not None:
        out["error"] = error
    return out


def check_device(device_id, secret, hash_alg) -> None:
    if not isinstance(device_id, str) or not DEVICE_ID.fullmatch(device_id):
        raise ReceiverError(f"device id {device_id!r}: use 1-64 letters, digits, '.', '_' or '-'")
    if not isinstance(secret, bytes) or len(secret) < MIN_SECRET_BYTES:
        raise ReceiverError(f"device {device_id}: the secret must be at least {MIN_SECRET_BYTES} bytes")
    if hash_alg not in HASH_ALGS:
        raise ReceiverError(f"device {device_id}: hash_alg must be one of {', '.join(HASH_ALGS)}")


def _create(db: sqlite_utils.Database) -> None:
    db["devices"].create({"device_id": str, "secret_hex": str, "hash_alg": str, "source": str,
                          "hardware": str, "added_at": float}, pk="device_id")
    # json: the canonical form without hash and sig, the very bytes the hash covers
    db["records"].create({"record_id": str, "device_id": str, "chain_id": str, "seq": int,
                          "hash": str, "sig": str, "prev_hash": str, "kind": str,
                          "project_no": str, "json": str, "received_at": float}, pk="record_id")
    db["records"].create_index(["device_id", "chain_id", "seq"])
    db.execute("CREATE INDEX records_rated ON records(project_no) WHERE kind = 'rating'")
    db["rejections"].create({"id": int, "device_id": str, "record_id": str, "chain_id": str,
                             "seq": int, "error": str, "detail": str, "received_at": float}, pk="id")
    db["rejections"].create_index(["device_id", "record_id", "error"], unique=True)
    db["corrections"].create({"id": int, "device_id": str, "record_id": str, "json": str,
                              "received_at": float}, pk="id")
    db["corrections"].create_index(["record_id"])
    db["heartbeats"].create({"id": int, "device_id": str, "json": str, "received_at": float}, pk="id")
    db["heartbeats"].create_index(["device_id"])
    db["enroll_codes"].create({"code": str, "device_id": str, "hash_alg": str, "used_at": float,
                               "used_by": str}, pk="code")


class ReceiverDB:
    """The store. Every method is thread-safe."""

    def __init__(self, path):
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite_utils.Database(open_connection(path))
        self.conn = self.db.conn
        self._lock = threading.Lock()
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise ReceiverError(f"the receiver database {path} has schema {version}, newer than "
                                f"this software ({SCHEMA_VERSION})")
        if version == 0:
            with self._transaction():
                _create(self.db)
                self.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextmanager
    def _transaction(self):
        """One write transaction, under the lock."""
        with self._lock, write_transaction(self.conn) as conn:
            yield conn

    def _query(self, sql: str, args: Iterable = ()) -> list:
        with self._lock:
            return self.conn.execute(sql, list(args)).fetchall()

    def close(self) -> None:
        with self._lock:
            self.conn.close()

    # --- devices ----------------------------------------------------------------------

    def add_device(self, device_id: str, secret: bytes, hash_alg: str = "sha256", *,
                   source: str = "api", hardware: Optional[Mapping] = None, now: float = 0.0) -> Device:
        """Register a device, or replace its secret and algorithm."""
        with self._transaction() as conn:
            return _put_device(conn, Device(device_id, secret, hash_alg), source, hardware or {}, now)

    def device(self, device_id: str) -> Optional[Device]:
        rows = self._query("SELECT secret_hex, hash_alg FROM devices WHERE device_id = ?", [device_id])
        return Device(device_id, bytes.fromhex(rows[0][0]), rows[0][1]) if rows else None

    def devices(self) -> list[dict]:
        """Registered devices, without their secrets."""
        rows = self._query("SELECT device_id, hash_alg, source, hardware, added_at FROM devices "
                           "ORDER BY device_id")
        return [{"device_id": d, "hash_alg": a, "source": s, "hardware": json.loads(h),
                 "added_at": t} for d, a, s, h, t in rows]

    # --- records ----------------------------------------------------------------------

    def ingest(self, device: Device, records: list[Mapping], now: float) -> list[dict]:
        """Judge and store one batch (one transaction); a result per record, in order.

        The one code path for POST /v1/records and `pingjia receiver import`. Records
        need a string record_id (the request schema sees to that).
        """
        judge, dev = chain.judge, device.device_id
        verdicts = [judge(r, dev, device.secret, device.hash_alg) for r in records]
        candidates = list({r["record_id"] for r, v in zip(records, verdicts) if v.error is None})
        results, rows, refused = [], [], []
        with self._transaction() as conn:
            held = {rid: (text, sig) for rid, text, sig in _select_in(
                conn, "SELECT record_id, json, sig FROM records WHERE record_id IN", candidates)}
            for record, verdict in zip(records, verdicts):
                rid = record["record_id"]
                error, detail = verdict.error, verdict.detail
                if error is None and rid in held:
                    if held[rid] == (verdict.body, record["sig"]):
                        results.append(result(rid, "duplicate"))
                        continue
                    error, detail = "conflict", "this record_id is held with other content"
                if error is None:
                    held[rid] = (verdict.body, record["sig"])
                    rows.append((rid, dev, record["chain_id"], record["seq"], record["hash"],
                                 record["sig"], record["prev_hash"], record["kind"],
                                 record["project_no"], verdict.body, now))
                    results.append(result(rid, "accepted"))
                    continue
                refused.append((device.device_id, rid, _scalar(record.get("chain_id"), str),
                                _scalar(record.get("seq"), int), error, detail, now))
                results.append(result(rid, "rejected", error))
            conn.executemany("INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            conn.executemany("INSERT OR IGNORE INTO rejections (device_id, record_id, chain_id, "
                             "seq, error, detail, received_at) VALUES (?, ?, ?, ?, ?, ?, ?)", refused)
        return results

    def records(self, device_id: str) -> list[dict]:
        """Stored records of a device, chain by chain (first seen first), in seq order."""
        rows = self._query("SELECT chain_id, seq, json, hash, sig FROM records WHERE device_id = ? "
                           "ORDER BY rowid", [device_id])
        first = {}
        for row in rows:
            first.setdefault(row[0], len(first))
        rows.sort(key=lambda r: (first[r[0]], r[1]))
        return [{**json.loads(text), "hash": h, "sig": sig} for _, _, text, h, sig in rows]

    def count(self, device_id: Optional[str] = None) -> int:
        if device_id is None:
            return self._query("SELECT count(*) FROM records")[0][0]
        return self._query("SELECT count(*) FROM records WHERE device_id = ?", [device_id])[0][0]

    def chain_report(self, device_id: str) -> list[dict]:
        held = [chain.Held(*row) for row in self._query(
            "SELECT chain_id, seq, record_id, hash, prev_hash FROM records WHERE device_id = ? "
            "ORDER BY rowid", [device_id])]
        tampered = [dict(zip(("error", "chain_id", "seq", "record_id", "detail"), row))
                    for row in self._query(
                        "SELECT error, chain_id, seq, record_id, detail FROM rejections "
                        f"WHERE device_id = ? AND error IN {tuple(chain.TAMPER_ERRORS)} ORDER BY id",
                        [device_id])]
        return chain.report(held, tampered)

    def summary(self, device_id: str) -> dict:
        """What `pingjia receiver report` shows of one device."""
        chains = [{"chain_id": c, "records": n, "first_seq": lo, "last_seq": hi}
                  for c, n, lo, hi, _ in self._query(
                      "SELECT chain_id, count(*), min(seq), max(seq), min(rowid) FROM records "
                      "WHERE device_id = ? GROUP BY chain_id ORDER BY min(rowid)", [device_id])]
        corrections = self._query("SELECT count(*) FROM corrections WHERE device_id = ?",
                                  [device_id])[0][0]
        beats = self._query("SELECT count(*), max(received_at) FROM heartbeats WHERE device_id = ?",
                            [device_id])[0]
        return {"device_id": device_id, "records": sum(c["records"] for c in chains),
                "chains": chains, "rejected": self.rejections(device_id),
                "corrections": corrections, "heartbeats": beats[0],
                "last_heartbeat_at": beats[1], "chain_events": self.chain_report(device_id)}

    def device_ids(self) -> list[str]:
        """Devices registered or heard from (records sent under an id never registered
        cannot exist: a request is verified with the device's secret)."""
        return [d for (d,) in self._query(
            "SELECT device_id FROM devices UNION SELECT device_id FROM records "
            "UNION SELECT device_id FROM rejections ORDER BY 1")]

    def rejections(self, device_id: str) -> dict[str, int]:
        return dict(self._query("SELECT error, count(*) FROM rejections WHERE device_id = ? "
                                "GROUP BY error ORDER BY error", [device_id]))

    def rated(self, project_nos: list[str]) -> set[str]:
        """Which of these businesses already have a rating record here (一次一评)."""
        with self._lock:
            return {p for (p,) in _select_in(
                self.conn, "SELECT DISTINCT project_no FROM records WHERE kind = 'rating' "
                           "AND project_no IN", project_nos)}

    # --- corrections and heartbeats -----------------------------------------------------

    def add_corrections(self, device_id: str, items: list[Mapping], now: float) -> list[dict]:
        """Store corrected times beside the device's records; a result per item, in order."""
        problems = [CORRECTION.problem(item) for item in items]
        ids = list({item["record_id"] for item in items})
        results, rows = [], []
        with self._transaction() as conn:
            known = {rid for (rid,) in _select_in(
                conn, "SELECT record_id FROM records WHERE device_id = ? AND record_id IN", ids,
                prefix=[device_id])}
            held = set(_select_in(conn, "SELECT record_id, json FROM corrections WHERE record_id IN", ids))
            for item, problem in zip(items, problems):
                rid, text = item["record_id"], canonical_text(item)
                if problem:
                    results.append(result(rid, "rejected", "invalid_correction"))
                elif rid not in known:
                    results.append(result(rid, "rejected", "unknown_record"))
                elif (rid, text) in held:
                    results.append(result(rid, "duplicate"))
                else:
                    held.add((rid, text))
                    rows.append((device_id, rid, text, now))
                    results.append(result(rid, "accepted"))
            conn.executemany("INSERT INTO corrections (device_id, record_id, json, received_at) "
                             "VALUES (?, ?, ?, ?)", rows)
        return results

    def corrections(self, device_id: str) -> list[dict]:
        return [json.loads(t) for (t,) in self._query(
            "SELECT json FROM corrections WHERE device_id = ? ORDER BY id", [device_id])]

    def add_heartbeat(self, device_id: str, summary: Mapping, now: float) -> None:
        with self._transaction() as conn:
            conn.execute("INSERT INTO heartbeats (device_id, json, received_at) VALUES (?, ?, ?)",
                         (device_id, canonical_text(summary), now))

    def heartbeats(self, device_id: str) -> list[dict]:
        return [json.loads(t) for (t,) in self._query(
            "SELECT json FROM heartbeats WHERE device_id = ? ORDER BY id", [device_id])]

    def last_heartbeat_at(self, device_id: str) -> Optional[float]:
        return self._query("SELECT max(received_at) FROM heartbeats WHERE device_id = ?",
                           [device_id])[0][0]

    # --- enrolment ----------------------------------------------------------------------

    def add_enroll_codes(self, codes: Mapping[str, Mapping]) -> None:
        """Codes (with an optional preset device_id and hash_alg); a used code stays used."""
        with self._transaction() as conn:
            conn.executemany("INSERT OR IGNORE INTO enroll_codes (code, device_id, hash_alg) "
                             "VALUES (?, ?, ?)",
                             [(c, o.get("device_id"), o.get("hash_alg", "sha256")) for c, o in codes.items()])

    def enroll(self, code: str, hardware: Mapping, now: float) -> Optional[tuple[Device, str]]:
        """Use a code once: a new device and its secret as hex, or None for a bad code.

        The device keeps the hex text as its secret file and signs with that text's
        bytes (terminal/secret.py), so the text is what is registered as the key.
        """
        with self._transaction() as conn:
            row = conn.execute("SELECT device_id, hash_alg FROM enroll_codes WHERE code = ? "
                               "AND used_at IS NULL", [code]).fetchone()
            if row is None:
                return None
            secret_hex = secrets.token_hex(32)
            device = _put_device(conn, Device(row[0] or f"PJ-{secrets.token_hex(4).upper()}",
                                              secret_hex.encode("ascii"), row[1]),
                                 "enrol", hardware, now)
            conn.execute("UPDATE enroll_codes SET used_at = ?, used_by = ? WHERE code = ?",
                         (now, device.device_id, code))
        return device, secret_hex


def _put_device(conn, device: Device, source: str, hardware: Mapping, now: float) -> Device:
    check_device(*device)
    conn.execute("INSERT OR REPLACE INTO devices VALUES (?, ?, ?, ?, ?, ?)",
                 (device.device_id, device.secret.hex(), device.hash_alg, source,
                  canonical_text(hardware), now))
    return device


def _scalar(value, kind):
    return value if isinstance(value, kind) and not isinstance(value, bool) else None


def _select_in(conn, sql: str, values: list, prefix: Iterable = ()) -> list:
    """`sql (?, ?, ...)` over `values` in chunks SQLite takes; no query at all for none."""
    out = []
    for i in range(0, len(values), 500):
        chunk = values[i:i + 500]
        out += conn.execute(f"{sql} ({', '.join('?' * len(chunk))})", [*prefix, *chunk]).fetchall()
    return out
