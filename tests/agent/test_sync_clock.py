"""Devices without a real-time clock: corrected times sent as corrections, clock_skew.

The receiver runs on a fixed clock far from ours, so the agent has to learn the offset
from the `clock_skew` answer, and every corrected time can be worked out exactly.
"""
from __future__ import annotations

import sqlite3
import time
from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.receiver import Receiver
from agent.timefix import Offset, TrustedTime, corrected
from terminal.clock import CHINA
from terminal.store import DB_NAME
from tests.agent.conftest import BOOT, DEVICE_ID, SECRET, draft, open_store

MONO_NOW = 5_000_000  # the agent's monotonic clock, frozen: corrections come out exact


def at(unix_ms: int) -> str:
    return datetime.fromtimestamp(unix_ms / 1000, CHINA).replace(microsecond=0).isoformat()


@pytest.fixture(params=[3600, -7200], ids=["central-ahead", "central-behind"])
def skewed_rx(request, tmp_path):
    server_time = int(time.time()) + request.param
    rx = Receiver(tmp_path / "rx.db", devices={DEVICE_ID: {"secret": SECRET, "hash_alg": "sha256"}},
                  port=0, clock=lambda: server_time)
    rx.server_time = server_time
    with rx:
        yield rx


def unsynced_records(device):
    """Two records of this boot made with a wrong clock, one made with a good clock, and
    one of an earlier boot with a wrong clock."""
    with open_store(device, boot_id=BOOT) as s:
        s.append([draft(1, synced=False, invited_at="2000-01-01T08:00:00+08:00",
                        rated_at="2000-01-01T08:01:10+08:00", mono_ms=2_000_000),
                  draft(2, level=None, synced=False, invited_at="2000-01-01T08:05:00+08:00",
                        mono_ms=3_000_000),
                  draft(3)])
    with open_store(device, boot_id="boot-before") as s:
        s.append([draft(4, synced=False, mono_ms=2_500_000)])


def test_clock_skew_answer_corrects_the_signing_clock_and_the_upload_goes_on(
        device, skewed_rx, make_agent):
    unsynced_records(device)
    agent = make_agent(skewed_rx.url, kernel_synced=lambda: False,
                       agent_kw={"mono_ms": lambda: MONO_NOW})
    assert agent.drain() is True
    assert abs(agent.central.skew_s - (skewed_rx.server_time - time.time())) <= 2
    assert skewed_rx.count(DEVICE_ID) == 4 and skewed_rx.chain_report(DEVICE_ID) == []


def test_records_of_this_boot_get_corrected_times_from_server_time(device, skewed_rx, make_agent):
    unsynced_records(device)
    agent = make_agent(skewed_rx.url, kernel_synced=lambda: False,
                       agent_kw={"mono_ms": lambda: MONO_NOW})
    assert agent.drain() is True

    offset_ms = skewed_rx.server_time * 1000 - MONO_NOW
    got = {c["record_id"]: c for c in skewed_rx.corrections(DEVICE_ID)}
    records = {r["seq"]: r for r in skewed_rx.records(DEVICE_ID)}
    assert set(got) == {records[1]["record_id"], records[2]["record_id"]}
    rating, unrated = got[records[1]["record_id"]], got[records[2]["record_id"]]
    assert rating["rated_at"] == at(offset_ms + 2_000_000)
    assert rating["invited_at"] == at(offset_ms + 2_000_000 - 70_000)  # same 70 s before
    assert unrated["invited_at"] == at(offset_ms + 3_000_000) and unrated["rated_at"] is None
    assert {c["basis"] for c in got.values()} == {"server_time"}
    # the signed records themselves are untouched
    assert records[1]["rated_at"] == "2000-01-01T08:01:10+08:00"
    assert agent.outbox.uncorrectable(BOOT) == 1  # the earlier boot's record

    assert agent.drain() and agent.correct_times() == 0  # sent once only
    assert len(skewed_rx.corrections(DEVICE_ID)) == 2
    with sqlite3.connect(device / DB_NAME) as conn:
        assert conn.execute("SELECT seq, status FROM corrections ORDER BY seq").fetchall() == \
            [(1, "delivered"), (2, "delivered")]


def test_no_correction_before_real_time_is_known(device, make_agent):
    unsynced_records(device)
    with sqlite3.connect(device / DB_NAME) as conn:  # delivered by an earlier run
        conn.execute("UPDATE delivery SET status = 'delivered'")
    agent = make_agent("http://127.0.0.1:9", kernel_synced=lambda: False)
    assert agent.correct_times() == 0  # no server time heard, kernel not synchronised
    assert agent.time.synced() == {"synced": False, "basis": None}


def test_ntp_synchronised_kernel_is_the_preferred_basis(device, central_rx, make_agent):
    unsynced_records(device)
    wall = int(time.time())
    agent = make_agent(central_rx.url, kernel_synced=lambda: True,
                       agent_kw={"mono_ms": lambda: MONO_NOW, "wall": lambda: wall})
    assert agent.drain()
    got = central_rx.corrections(DEVICE_ID)
    assert len(got) == 2 and {c["basis"] for c in got} == {"ntp"}
    rated = [c["rated_at"] for c in got if c["rated_at"]]
    assert rated == [at(wall * 1000 - MONO_NOW + 2_000_000)]


def test_trusted_time_and_corrected_times_units():
    heard = TrustedTime(wall=lambda: 0, mono_ms=lambda: 9_000, kernel_synced=lambda: False)
    assert heard.offset() is None
    heard.heard_server_time(1_000_000, 4_000)
    assert heard.offset() == Offset(1_000_000_000 - 4_000, "server_time")
    off = Offset(1_764_000_000_000, "ntp")
    inv, rated = corrected("rating", "2000-01-01T08:00:00+08:00", "2000-01-01T08:00:30+08:00",
                           5_000, off)
    assert rated == at(1_764_000_005_000)
    assert datetime.fromisoformat(rated) - datetime.fromisoformat(inv) == timedelta(seconds=30)
    assert corrected("unrated", "2000-01-01T08:00:00+08:00", None, 0, off) == \
        (at(1_764_000_000_000), None)


@given(st.integers(0, 10**10), st.integers(0, 3600), st.integers(-10**12, 2 * 10**12))
def test_a_corrected_rating_keeps_its_duration_and_lands_on_the_offset(mono, duration, offset_ms):
    from hypothesis import assume
    assume(0 <= offset_ms + mono - duration * 1000)  # after 1970
    invited = datetime(2000, 1, 1, 8, 0, 0, tzinfo=CHINA)
    rated = invited + timedelta(seconds=duration)
    inv, rat = corrected("rating", invited.isoformat(), rated.isoformat(), mono, Offset(offset_ms, "ntp"))
    assert rat == at(offset_ms + mono)
    assert datetime.fromisoformat(rat) - datetime.fromisoformat(inv) == timedelta(seconds=duration)
