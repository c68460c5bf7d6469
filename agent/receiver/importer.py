"""Import of outbox export files (`pingjia outbox export`) into the receiver.

The path for records carried by hand from a device without network: the same verdicts,
deduplication and chain checks as an upload (`ReceiverDB.ingest`), so importing a file
twice stores nothing the second time and an edited line shows as bad_hash.

The file is JSON Lines: a header `{"format": "pingjia-outbox", "version": 1, "device_id",
"chain_id", "hash_alg", "exported_at", "count", "first_seq", "last_seq"}`, then one signed
record per line. The whole file is read and checked before anything is stored: a
truncated or garbled file changes nothing.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional, Union

from agent.receiver.db import ReceiverDB, ReceiverError
from agent.receiver.server import Receiver
from terminal.records import HASH_ALGS

FORMAT = "pingjia-outbox"
VERSION = 1
BATCH = 500


def read_export(path) -> tuple[dict, list[dict]]:
    """Header and records of an export file; ReceiverError naming the line if it is bad."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ReceiverError(f"{path}: cannot read the file: {exc}") from None
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        raise ReceiverError(f"{path}: the file is empty")
    parsed = []
    for n, line in lines:
        try:
            value = json.loads(line)
        except ValueError as exc:
            raise ReceiverError(f"{path} line {n}: not JSON ({str(exc)[:80]})") from None
        if not isinstance(value, dict):
            raise ReceiverError(f"{path} line {n}: not a JSON object")
        parsed.append((n, value))
    header = parsed[0][1]
    if header.get("format") != FORMAT or header.get("version") != VERSION:
        raise ReceiverError(f"{path}: not a {FORMAT} version {VERSION} file (first line is the "
                            "header written by `pingjia outbox export`)")
    for key in ("device_id", "chain_id", "hash_alg"):
        if not isinstance(header.get(key), str):
            raise ReceiverError(f"{path}: the header lacks {key}")
    if header["hash_alg"] not in HASH_ALGS:
        raise ReceiverError(f"{path}: unknown hash_alg {header['hash_alg']!r}")
    records = [value for _, value in parsed[1:]]
    count = header.get("count")
    if count != len(records):
        raise ReceiverError(f"{path}: the header says {count} records, the file holds "
                            f"{len(records)} (truncated or edited?)")
    for n, value in parsed[1:]:
        if not isinstance(value.get("record_id"), str) or not value["record_id"]:
            raise ReceiverError(f"{path} line {n}: the record has no record_id")
    return header, records


def import_file(target: Union[str, Path, ReceiverDB, Receiver], path,
                now: Optional[float] = None) -> dict:
    """Ingest one export file; counts of accepted, duplicate and rejected records.

    `target` is a running or stopped `Receiver` (its stats count the records), a
    `ReceiverDB`, or the path of a receiver database. The device must be known to it
    (registered with its secret, or enrolled).
    """
    header, records = read_export(path)
    own = None
    if isinstance(target, Receiver):
        db, ingest = target.db, target.ingest
    else:
        db = target if isinstance(target, ReceiverDB) else ReceiverDB(target)
        own = None if isinstance(target, ReceiverDB) else db
        ingest = db.ingest
    try:
        device = db.device(header["device_id"])
        if device is None:
            raise ReceiverError(f"{path}: device {header['device_id']} is not known to this "
                                "receiver; register it with --device ID:SECRETFILE[:ALG]")
        if device.hash_alg != header["hash_alg"]:
            raise ReceiverError(f"{path}: the file says hash_alg {header['hash_alg']}, the "
                                f"receiver has {device.hash_alg} for {device.device_id}")
        when = time.time() if now is None else now
        counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
        errors: dict[str, int] = {}
        for i in range(0, len(records), BATCH):
            for result in ingest(device, records[i:i + BATCH], when):
                counts[result["status"]] += 1
                if result["status"] == "rejected":
                    errors[result["error"]] = errors.get(result["error"], 0) + 1
    finally:
        if own is not None:
            own.close()
    return {"file": str(path), "device_id": header["device_id"], "chain_id": header["chain_id"],
            "records": len(records), **counts, "errors": errors}
