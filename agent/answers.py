"""What the central system's answer to a batch says of each record, and what makes a
stored row unsendable: pure functions of bytes and JSON, apart from the agent's loop
(agent/sync.py) so that they read, and are tested, on their own.
"""
from __future__ import annotations

import json
from typing import Optional, Sequence

from terminal.central_client import Transient
from terminal.records import record_hash

# the contract's per-record answer → the delivery status it leaves the record in (one of
# store_schema.DELIVERY_STATUSES: tests/agent/test_outbox.py holds them together)
DELIVERED = {"accepted": "delivered", "duplicate": "delivered", "rejected": "rejected"}

BATCH_REFUSED = (400, 413, 422)   # the central system refused the whole batch as sent


class BadRows(Exception):
    """Rows of a batch that cannot be sent as stored: (seq, why) each."""

    def __init__(self, rows: list[tuple[int, str]]):
        super().__init__(f"{len(rows)} bad row(s)")
        self.rows = rows


def row_problem(key, raw: bytes, alg: str) -> Optional[str]:
    """Why a stored row cannot be sent as it is, or None: it must be UTF-8 JSON of an
    object that is the record of its row and matches its own hash."""
    try:
        record = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return "stored JSON is not UTF-8"
    except (ValueError, RecursionError):
        return "stored JSON is not valid (truncated or damaged)"
    if not isinstance(record, dict):
        return "stored JSON is not a record"
    if record.get("seq") != key.seq or (key.record_id and record.get("record_id") != key.record_id):
        return "stored JSON is the record of another row"
    try:
        if record.get("hash") != record_hash(record, alg):
            return "stored JSON does not match its own hash (edited)"
    except (UnicodeError, TypeError, ValueError):
        return "stored JSON cannot be serialised"
    return None


def outcomes(body: Optional[dict], sent: Sequence) -> list[tuple[int, str, Optional[str]]]:
    """(seq, delivery status, error) for each sent row, from the per-record results.

    Results that do not match the batch one to one (missing, extra, repeated, unknown
    status) are a garbled answer: Transient, and the whole batch goes again.
    """
    results = body.get("results") if isinstance(body, dict) else None
    if not isinstance(results, list) or len(results) != len(sent):
        raise Transient(f"answer does not match the batch ({len(sent)} sent)")
    by_id = {}
    for result in results:
        rid = result.get("record_id") if isinstance(result, dict) else None
        if rid in by_id or result.get("status") not in DELIVERED:
            raise Transient("answer has a malformed or repeated result")
        by_id[rid] = result
    out = []
    for row in sent:
        result = by_id.get(row.record_id)
        if result is None:
            raise Transient("answer lacks a result for a record that was sent")
        status = DELIVERED[result["status"]]
        error = str(result.get("error") or "rejected")[:500] if status == "rejected" else None
        out.append((row.seq, status, error))
    return out
