"""The serial port's side of the driver: which rates are tried, in what order, and a
session used on its own (without the polling loop)."""
from drivers.idcard.port import PROBE_ORDER, rates_to_try
from drivers.idcard.session import CardSession
from drivers.idcard.simulated import SimulatedReader


def test_a_requested_rate_is_the_only_one_tried():
    assert rates_to_try(9600, 115200, PROBE_ORDER) == [9600]


def test_the_probe_starts_at_the_default_rate():
    assert rates_to_try(None, None, PROBE_ORDER) == list(PROBE_ORDER)


def test_the_last_rate_that_worked_is_tried_first_and_once():
    assert rates_to_try(None, 19200, PROBE_ORDER) == [19200, 115200, 57600, 38400, 9600]


def test_a_session_alone_reads_a_card_and_closes():
    with SimulatedReader(baud=38400) as sim:
        sim.place()
        with CardSession(sim.link, probe_timeout=0.1) as session:
            assert session.baud == 38400
            assert session.read_card().id_number == "11010519491231002X"
        assert not session.is_open
