"""agent/answers.py: the central system's per-record answers read against the batch sent,
and what makes a stored row unsendable."""
from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.answers import DELIVERED, outcomes, row_problem
from terminal.central_client import Transient
from agent.outbox import Key, Row
from terminal.records import record_hash
from terminal.store_schema import DELIVERY_STATUSES


def test_garbled_answers_are_transient():
    rows = [Row(1, "a", b"{}"), Row(2, "b", b"{}")]
    ok = {"results": [{"record_id": "b", "status": "duplicate"},
                      {"record_id": "a", "status": "rejected", "error": "invalid_record"}]}
    assert outcomes(ok, rows) == [(1, "rejected", "invalid_record"), (2, "delivered", None)]
    for bad in (None, {}, {"results": "x"}, {"results": ok["results"][:1]},
                {"results": [ok["results"][0], ok["results"][0]]},
                {"results": [{"record_id": "a", "status": "maybe"}, ok["results"][0]]},
                {"results": [{"record_id": "c", "status": "accepted"}, ok["results"][0]]}):
        with pytest.raises(Transient):
            outcomes(bad, rows)


@given(st.lists(st.sampled_from(["accepted", "duplicate", "rejected"]), min_size=1, max_size=30),
       st.randoms(use_true_random=False))
def test_outcomes_follow_record_ids_in_any_answer_order(statuses_, rnd):
    sent = [Key(seq, f"id-{seq}") for seq in range(1, len(statuses_) + 1)]
    results = [{"record_id": k.record_id, "status": s, **({"error": f"e{k.seq}"} if s == "rejected" else {})}
               for k, s in zip(sent, statuses_)]
    rnd.shuffle(results)
    got = outcomes({"results": results}, sent)
    assert [seq for seq, _, _ in got] == [k.seq for k in sent]
    for (seq, status, error), wanted in zip(got, statuses_):
        assert status == ("rejected" if wanted == "rejected" else "delivered")
        assert error == (f"e{seq}" if wanted == "rejected" else None)


def test_every_answer_leaves_a_known_delivery_status():
    assert set(DELIVERED.values()) <= set(DELIVERY_STATUSES)


def test_a_row_is_sendable_only_as_the_intact_record_of_its_own_row():
    record = {"seq": 3, "record_id": "r-3", "kind": "rating"}
    record["hash"] = record_hash(record, "sha256")
    raw = json.dumps(record).encode("utf-8")
    assert row_problem(Key(3, "r-3"), raw, "sha256") is None
    assert "another row" in row_problem(Key(4, "r-3"), raw, "sha256")
    assert "UTF-8" in row_problem(Key(3, "r-3"), b"\xff\xfe", "sha256")
    assert "not valid" in row_problem(Key(3, "r-3"), raw[:-5], "sha256")
    assert "not a record" in row_problem(Key(3, "r-3"), b"[1]", "sha256")
    edited = json.dumps(dict(record, kind="unrated")).encode("utf-8")
    assert "own hash" in row_problem(Key(3, "r-3"), edited, "sha256")
