"""`pingjia reader read` says when a card's ID number fails its GB 11643 check digit,
and exits 1 (a problem was found); it still prints the number masked only (a technician's screen, not a log)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from drivers.idcard.simulated import SimulatedReader, foreign_2017_card, resident_card

REPO = Path(__file__).resolve().parents[2]
GOOD, BAD = "11010519491231002X", "110105194912310021"  # the same number, last digit wrong


@pytest.fixture
def sim():
    with SimulatedReader() as s:
        yield s


def reader_read(sim, *extra):
    return subprocess.run([sys.executable, "-m", "config.cli", "reader", "read", "--port",
                           sim.link, "--timeout", "5", *extra],
                          cwd=REPO, capture_output=True, text=True, timeout=30)


def test_a_wrong_check_digit_is_id_valid_false_and_exits_non_zero(sim):
    sim.place(resident_card(id_number=BAD))
    r = reader_read(sim, "--json")
    assert r.returncode == 1, r.stderr
    answer = json.loads(r.stdout)
    assert answer["id_valid"] is False and answer["id"] == "1101**********0021"
    assert BAD not in r.stdout + r.stderr


def test_a_wrong_check_digit_is_a_plain_warning_and_the_number_stays_masked(sim):
    sim.place(resident_card(id_number=BAD))
    r = reader_read(sim)
    assert r.returncode == 1
    assert "id check: WRONG check digit (GB 11643)" in r.stdout
    assert "warning:" in r.stderr and "check digit" in r.stderr
    assert BAD not in r.stdout + r.stderr and "张三" not in r.stdout + r.stderr


def test_a_right_check_digit_says_ok(sim):
    sim.place(resident_card(id_number=GOOD))
    r = reader_read(sim)
    assert r.returncode == 0, r.stderr
    assert "id check: ok" in r.stdout and "warning" not in r.stderr


def test_a_card_without_a_check_digit_is_id_valid_null(sim):
    sim.place(foreign_2017_card())
    r = reader_read(sim, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["id_valid"] is None
