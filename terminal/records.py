"""Rating records as the wire contract defines them: fields, canonical form, hash chain.

Shared by the terminal (which seals records), the agent (which sends them) and the
reference receiver (which verifies them). See docs/records.md.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from typing import Callable, Iterable, Mapping

from config import levels

ZERO_HASH = "0" * 64
HASH_ALGS = ("sha256", "sm3")

# Every field of the contract, in the order of docs/records.md.
FIELDS = (
    "record_id", "device_id", "chain_id", "seq", "prev_hash", "hash", "sig",
    "kind", "unrated_reason", "visit_id", "channel", "pf", "area_code", "hall_code",
    "window_no", "dept_code", "dept_name", "project_no", "task_code", "task_handle_item",
    "task_name", "staff_id", "staff_name", "level", "score", "tags", "tags_missing",
    "tag_version", "assess_number", "invited_at", "rated_at", "clock_synced", "boot_id",
    "mono_ms", "real_name",
)
CHAIN_FIELDS = ("record_id", "device_id", "chain_id", "seq", "prev_hash", "hash", "sig")
# Fields the flow fills in; the store adds the chain fields and boot_id.
CONTENT_FIELDS = tuple(f for f in FIELDS if f not in CHAIN_FIELDS and f != "boot_id")

SCORES = {5: 10, 4: 8, 3: 6, 2: 3, 1: 0}
BAD_LEVELS = levels.BAD
UNRATED_REASONS = ("timeout", "superseded", "cancelled", "interrupted")


def uuid7(now_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
          random_bytes: Callable[[int], bytes] = os.urandom) -> str:
    """A time-ordered UUID (version 7, RFC 9562): 48 bits of Unix milliseconds, then 74
    random bits.

    Record ids are the unique key of the device's store and of the central system's:
    ids that grow with time are appended at the end of those indexes instead of
    touching a random page per record (a 100 000-record backlog writes a fraction of
    the pages). A wrong clock (no RTC before NTP) only costs that ordering; the random
    bits keep ids unique either way.
    """
    rand = int.from_bytes(random_bytes(10), "big")
    value = ((now_ms() & 0xFFFF_FFFF_FFFF) << 80) | (0x7 << 76) \
        | (((rand >> 62) & 0xFFF) << 64) | (0b10 << 62) | (rand & ((1 << 62) - 1))
    h = f"{value:032x}"  # the canonical text of uuid.UUID(int=value), without the module
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _hasher(alg: str):
    if alg not in HASH_ALGS:
        raise ValueError(f"unknown hash algorithm {alg!r}; use one of {HASH_ALGS}")
    try:
        hashlib.new(alg)
    except ValueError:
        raise RuntimeError(f"this Python's OpenSSL has no {alg}; use hash_alg = \"sha256\"") from None
    return alg


def canonical(record: Mapping) -> bytes:
    """UTF-8 JSON of the record without hash and sig, keys sorted, no spaces."""
    body = {k: v for k, v in record.items() if k not in ("hash", "sig")}
    return json.dumps(body, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def digest(data: bytes, alg: str) -> str:
    return hashlib.new(_hasher(alg), data).hexdigest()


def record_hash(record: Mapping, alg: str) -> str:
    return digest(canonical(record), alg)


def sign(hash_hex: str, secret: bytes, alg: str) -> str:
    return hmac.new(secret, hash_hex.encode("ascii"), _hasher(alg)).hexdigest()


def seal(record: dict, prev_hash: str, secret: bytes, alg: str) -> dict:
    """Set prev_hash, hash and sig on a record that has every other field."""
    record = dict(record)
    record["prev_hash"] = prev_hash
    record.pop("hash", None)
    record.pop("sig", None)
    missing = [f for f in FIELDS if f not in ("hash", "sig") and f not in record]
    if missing:
        raise ValueError("record lacks fields: " + ", ".join(missing))
    extra = set(record) - set(FIELDS)
    if extra:
        raise ValueError("record has unknown fields: " + ", ".join(sorted(extra)))
    record["hash"] = record_hash(record, alg)
    record["sig"] = sign(record["hash"], secret, alg)
    return record


def seal_problem(record: Mapping, secret: bytes | None, alg: str,
                 body: bytes | None = None) -> str | None:
    """"bad_hash" when the hash does not recompute from the content, "bad_signature" when
    the sig does not verify with `secret` (not looked at without one), None when both
    hold. `body` is the record's canonical form when the caller has made it already (the
    receiver stores it): it is not made twice."""
    if record.get("hash") != digest(canonical(record) if body is None else body, alg):
        return "bad_hash"
    if secret is not None and not hmac.compare_digest(
            str(record.get("sig", "")).encode("utf-8"),
            sign(record["hash"], secret, alg).encode("ascii")):
        return "bad_signature"
    return None


def check_record(record: Mapping, secret: bytes | None, alg: str) -> list[str]:
    """Problems with one record on its own: hash, signature, field rules."""
    problem = seal_problem(record, secret, alg)
    return ([problem] if problem else []) + check_rules(record)


def check_rules(record: Mapping) -> list[str]:
    """The field rules of check_record alone (a receiver that hashes by itself uses them)."""
    problems = []
    kind, level = record.get("kind"), record.get("level")
    if kind == "rating":
        if level not in SCORES or record.get("score") != SCORES.get(level):
            problems.append("bad_level_or_score")
        if record.get("unrated_reason") is not None or record.get("rated_at") is None:
            problems.append("rating_fields")
        if level in BAD_LEVELS and not record.get("tags") and not record.get("tags_missing"):
            problems.append("bad_rating_without_tags")
    elif kind == "unrated":
        if record.get("unrated_reason") not in UNRATED_REASONS:
            problems.append("bad_unrated_reason")
        if level is not None or record.get("score") is not None or record.get("rated_at") is not None:
            problems.append("unrated_with_rating")
    else:
        problems.append("bad_kind")
    return problems


def verify_chain(records: Iterable[Mapping], secret: bytes | None, alg: str,
                 start_seq: int = 1, start_prev: str = ZERO_HASH) -> list[dict]:
    """Walk records of one chain in seq order; report every gap, edit and break.

    Returns a list of findings `{"seq", "problem", ...}`; empty means intact.
    """
    findings = []
    expected_seq, expected_prev = start_seq, start_prev
    chain_id = None
    for rec in records:
        seq = rec.get("seq")
        if chain_id is None:
            chain_id = rec.get("chain_id")
        elif rec.get("chain_id") != chain_id:
            findings.append({"seq": seq, "problem": "chain_changed"})
        if seq != expected_seq:
            findings.append({"seq": seq, "problem": "gap", "expected": expected_seq})
        elif rec.get("prev_hash") != expected_prev:
            findings.append({"seq": seq, "problem": "prev_hash_mismatch"})
        for problem in check_record(rec, secret, alg):
            findings.append({"seq": seq, "problem": problem})
        expected_seq = (seq or 0) + 1
        expected_prev = rec.get("hash")
    return findings
