"""The receiver's chain check (agent/receiver/chain.py) on records the real store sealed:
the verdict on one record, and the chain report over what is held, on its own and through
uploads over HTTP."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.receiver import chain
from config.text import first_text_problem
from terminal import records as rec
from tests.agent.conftest import DEVICE_ID, SECRET, drafts, open_store
from tests.agent.receiver.conftest import make_records, resealed, statuses


def sealed(tmp_path, n: int) -> list[dict]:
    with open_store(tmp_path) as store:
        return store.append(drafts(n))


def held(records) -> list[chain.Held]:
    return [chain.Held(r["chain_id"], r["seq"], r["record_id"], r["hash"], r["prev_hash"])
            for r in records]


def test_a_record_as_sealed_may_be_stored_as_its_canonical_form(tmp_path):
    record = sealed(tmp_path, 1)[0]
    verdict = chain.judge(record, DEVICE_ID, SECRET, "sha256")
    assert verdict.error is None
    assert verdict.body.startswith("{") and record["record_id"] in verdict.body


def test_an_edited_field_is_a_bad_hash_and_a_resealed_hash_a_bad_sig(tmp_path):
    record = sealed(tmp_path, 1)[0]
    edited = {**record, "level": 1 if record["level"] != 1 else 5}
    assert chain.judge(edited, DEVICE_ID, SECRET, "sha256").error == "bad_hash"
    rehashed = {**edited, "hash": rec.record_hash(edited, "sha256")}
    assert chain.judge(rehashed, DEVICE_ID, SECRET, "sha256").error == "bad_sig"
    assert chain.judge(record, DEVICE_ID, b"another secret of the same size!", "sha256").error == "bad_sig"


def test_a_record_sent_by_another_device_is_refused(tmp_path):
    record = sealed(tmp_path, 1)[0]
    assert chain.judge(record, "PJQ-330106-0099", SECRET, "sha256").error == "device_mismatch"


def test_an_unbroken_chain_reports_nothing_in_any_arrival_order(tmp_path):
    records = sealed(tmp_path, 5)
    assert chain.report(held(records)) == []
    assert chain.report(held(reversed(records))) == []


def test_a_missing_run_is_one_gap_and_a_broken_link_is_an_edit(tmp_path):
    records = sealed(tmp_path, 6)
    events = chain.report(held(records[:2] + records[4:]))
    gaps = [e for e in events if e["kind"] == "gap"]
    assert [(g["seq"], g["last_seq"]) for g in gaps] == [(records[2]["seq"], records[3]["seq"])]
    relinked = [*records[:3], {**records[3], "prev_hash": "f" * 64}, *records[4:]]
    assert [e["kind"] for e in chain.report(held(relinked))] == ["edited"]


# --- chain report -----------------------------------------------------------------------

def test_chain_report_shows_gaps_even_when_batches_arrive_out_of_order(rx, client, tmp_path):
    records = make_records(tmp_path / "dev", 10)
    client.upload(records[6:])
    client.upload(records[:3])
    report = rx.chain_report(DEVICE_ID)
    assert [(e["kind"], e["seq"], e.get("last_seq")) for e in report] == [("gap", 4, 6)]
    assert report[0]["chain_id"] == records[0]["chain_id"] and "4-6" in report[0]["detail"]
    client.upload(records[3:6])
    assert rx.chain_report(DEVICE_ID) == []


def test_chain_report_shows_an_edited_record(rx, client, tmp_path):
    """Edited and sealed again with the device secret: only the next link shows it."""
    records = make_records(tmp_path / "dev", 6)
    records[3] = resealed(records[3], staff_name="张三")
    assert statuses(client.upload(records)) == [("accepted", None)] * 6
    assert [(e["kind"], e["seq"]) for e in rx.chain_report(DEVICE_ID)] == [("edited", 5)]


def test_chain_report_shows_a_reset(rx, client, tmp_path):
    client.upload(make_records(tmp_path / "dev", 3))
    client.upload(make_records(tmp_path / "new-storage", 2))
    report = rx.chain_report(DEVICE_ID)
    assert [(e["kind"], e["seq"]) for e in report] == [("chain_reset", 1)]
    assert "held up to seq 3" in report[0]["detail"]
    assert len(rx.records(DEVICE_ID)) == 5


def test_chain_report_shows_a_reused_seq(rx, client, tmp_path):
    records = make_records(tmp_path / "dev", 3)
    twin = resealed({**records[2], "record_id": "9f0c1b2a-0000-4000-8000-000000000003"})
    client.upload(records + [twin])
    assert [e["kind"] for e in rx.chain_report(DEVICE_ID)] == ["duplicate_seq"]



# any text at all in any field of a sealed record (resealed, so only the text can be
# wrong): refused as invalid_text exactly when the full check finds a bad character,
# whatever the receiver's fast path over the canonical text concluded
# (lists joined, not st.text: st.text leaves lone surrogates out)
_BAD_OR_NOT = st.lists(st.one_of(st.characters(codec=None), st.sampled_from(
    ["\\", "\n", "\x00", "\x1f", "\x7f", "\x9f", "\ud800", "\ufdd0", "\U0001fffe", "\u3000"])),
    max_size=5).map("".join)


@pytest.fixture(scope="module")
def one_record(tmp_path_factory) -> dict:
    return sealed(tmp_path_factory.mktemp("store"), 1)[0]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(["staff_name", "task_name", "dept_name", "hash", "sig", "tags"]),
       value=_BAD_OR_NOT)
def test_bad_text_anywhere_is_invalid_text_and_only_then(one_record, field, value):
    record = dict(one_record)
    changed = {field: [value] if field == "tags" else value if field in ("hash", "sig")
               else "办理" + value}
    try:
        record = resealed(record, **changed) if field not in ("hash", "sig") else {**record, **changed}
    except UnicodeEncodeError:  # a lone surrogate has no UTF-8 form to seal
        record = {**record, **changed}
    verdict = chain.judge(record, DEVICE_ID, SECRET, "sha256")
    expected = first_text_problem(record)
    assert (verdict.error == "invalid_text") == (expected is not None), (verdict, expected)
