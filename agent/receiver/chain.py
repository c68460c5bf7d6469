"""Per-device chain checking: the verdict on one record, and the chain report.

A record is judged on its own when it arrives (schema, hash, signature, rules). The
chain (gaps, prev_hash links, resets, reused seqs) is judged when a report is asked for,
over everything held at that moment: batches arrive out of order under retries, so a
gap seen at one arrival may be closed by the next, and only gaps still open are real.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Mapping, NamedTuple, Optional

from agent.receiver.contract import check
from config.text import first_text_problem
from terminal.http import loggable
from terminal import records as rec

RECORD = check("Record")
# Rejections that are chain events: the record was edited after it was sealed.
TAMPER_ERRORS = ("bad_hash", "bad_sig")
# "edited": a prev_hash that does not match the record held before it (that record or this
# one was replaced after sealing); "bad_hash"/"bad_sig": a refused record that was edited.
EVENT_KINDS = ("chain_reset", "gap", "edited", "duplicate_seq", "bad_hash", "bad_sig")


class Verdict(NamedTuple):
    error: Optional[str]      # None: the record may be stored
    detail: str = ""
    body: str = ""            # a storable record: its canonical form (without hash and sig)


def judge(record: Mapping, device_id: str, secret: bytes, alg: str) -> Verdict:
    """Whether one record, sent by `device_id`, may be stored; if not, why.

    The canonical form is made once here: it is what the hash covers and what is stored.
    """
    if record.get("device_id") != device_id:
        return Verdict("device_mismatch", f"device_id {str(record.get('device_id'))[:64]!r} "
                                          f"sent by device {device_id}")
    bad_text = first_text_problem(record)
    if bad_text:  # no canonical form exists for a lone surrogate: judged before one is made
        return Verdict("invalid_text", f"{loggable(bad_text[0]) or 'record'}: {bad_text[1]}")
    body = rec.canonical(record)
    # An edit is what the chain must show, so it is looked for before a record is
    # called merely malformed.
    sealed = rec.seal_problem(record, secret, alg, body)
    if sealed == "bad_hash":
        return Verdict("bad_hash", "hash does not recompute from the content")
    if sealed:
        return Verdict("bad_sig", "sig does not verify with the device secret")
    problem = RECORD.problem(record)
    if problem:
        return Verdict("invalid_record", f"{problem[0] or 'record'} {problem[1]}")
    problems = rec.check_rules(record)
    if problems:
        return Verdict(problems[0], ", ".join(problems))
    return Verdict(None, "", body.decode("utf-8"))


class Held(NamedTuple):
    """What the report needs of one stored record."""
    chain_id: str
    seq: int
    record_id: str
    hash: str
    prev_hash: str


def _event(kind: str, chain_id, seq, detail: str, **extra) -> dict:
    return {"kind": kind, "chain_id": chain_id, "seq": seq, "detail": detail, **extra}


def report(held: Iterable[Held], tampered: Iterable[Mapping] = ()) -> list[dict]:
    """Chain events of one device.

    `held` are its stored records in arrival order; `tampered` its rejections for
    bad_hash / bad_sig (`{"error", "chain_id", "seq", "record_id"}`). A gap event covers
    one run of missing seqs: `seq` is the first, `last_seq` the last.
    """
    chains: dict[str, dict[int, list[Held]]] = {}
    for h in held:  # dict order = order of first arrival of each chain
        chains.setdefault(h.chain_id, defaultdict(list))[h.seq].append(h)
    events = []
    previous = None
    for chain_id, by_seq in chains.items():
        seqs = sorted(by_seq)
        if previous is not None:
            events.append(_event("chain_reset", chain_id, seqs[0],
                                 f"new chain after chain {previous[0]} (held up to seq {previous[1]})"))
        events += _gaps(chain_id, seqs)
        for seq in seqs:
            records = by_seq[seq]
            if len(records) > 1:
                events.append(_event("duplicate_seq", chain_id, seq, f"{len(records)} different "
                                     "records: " + ", ".join(r.record_id for r in records)))
            events += _links(chain_id, seq, records, by_seq.get(seq - 1))
        previous = (chain_id, seqs[-1])
    seen = set()
    for t in tampered:
        key = (t["error"], t["chain_id"], t["seq"], t["record_id"])
        if key not in seen:
            seen.add(key)
            events.append(_event(t["error"], t["chain_id"], t["seq"],
                                 f"record {t['record_id']} was refused: {t['detail']}"))
    order = {c: i for i, c in enumerate(chains)}
    return sorted(events, key=lambda e: (order.get(e["chain_id"], len(order)),
                                         e["seq"] if isinstance(e["seq"], int) else 0,
                                         EVENT_KINDS.index(e["kind"])))


def _gaps(chain_id: str, seqs: list[int]) -> list[dict]:
    out, expected = [], 1
    for seq in seqs:
        if seq > expected:
            count = seq - expected
            what = f"seq {expected}" if count == 1 else f"seqs {expected}-{seq - 1} ({count} records)"
            out.append(_event("gap", chain_id, expected, f"{what} missing", last_seq=seq - 1))
        expected = seq + 1
    return out


def _links(chain_id: str, seq: int, records: list[Held], before: Optional[list[Held]]) -> list[dict]:
    """prev_hash of each record at `seq` against the record(s) held at seq - 1."""
    if seq == 1:
        wanted = {rec.ZERO_HASH}
    elif before:
        wanted = {b.hash for b in before}
    else:
        return []  # the predecessor is missing: that is a gap, reported as one
    return [_event("edited", chain_id, seq, f"record {r.record_id}: prev_hash does not "
                   f"match the hash of seq {seq - 1}" if seq > 1 else
                   f"record {r.record_id}: seq 1 must have prev_hash of 64 zeros")
            for r in records if r.prev_hash not in wanted]
