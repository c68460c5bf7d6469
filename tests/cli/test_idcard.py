"""`pingjia reader read` (config/cli/idcard.py) against the simulated reader: masked
output, exit codes, and `python -m config.cli.idcard`."""
import io
import json
import os
import subprocess
import sys

import pytest

from config.cli import idcard
from drivers.idcard.simulated import SimulatedReader

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NAME, NUMBER = "张三", "11010519491231002X"


@pytest.fixture
def sim():
    with SimulatedReader() as s:
        yield s


def run_cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    code = idcard.main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_cli_prints_masked_data(sim):
    sim.place()
    code, out, err = run_cli("read", "--port", sim.link)
    assert code == 0
    assert "张*" in out and "1101**********002X" in out and "resident" in out
    assert NAME not in out + err and NUMBER not in out + err


def test_cli_json(sim):
    sim.place()
    code, out, _ = run_cli("read", "--port", sim.link, "--json", "--baud", "115200")
    assert code == 0
    assert json.loads(out) == {"card_type": "resident", "name": "张*", "id": "1101**********002X",
                               "cert_type": "111", "id_valid": True}


def test_cli_no_card_exits_1(sim):
    code, out, err = run_cli("read", "--port", sim.link, "--timeout", "0.3")
    assert (code, out) == (1, "")
    assert "no card" in err


def test_cli_read_failure_exits_1(sim):
    sim.place()
    sim.inject(0x41)
    code, _, err = run_cli("read", "--port", sim.link)
    assert code == 1 and "place it again" in err


def test_cli_port_problems_exit_2():
    code, _, err = run_cli("read", "--port", "/dev/does-not-exist-idcard")
    assert code == 2 and "not found" in err


def test_cli_usage_errors_exit_2(capsys):
    assert run_cli("read")[0] == 2  # --port missing
    assert run_cli("read", "--port", "x", "--baud", "4800")[0] == 2
    assert run_cli("read", "--port", "x", "--timeout", "-1")[0] == 2
    assert run_cli("write")[0] == 2
    assert "usage" in capsys.readouterr().err


def test_cli_runs_as_a_module(sim):
    sim.place()
    result = subprocess.run(
        [sys.executable, "-m", "config.cli.idcard", "read", "--port", sim.link, "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=20,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["id"] == "1101**********002X"
