"""The pyserial driver against the simulated reader over a real pseudo-terminal."""
import errno
import logging
import os
import queue
import threading
import time

import pytest
import serial

from drivers.idcard import frames as F
from drivers.idcard.reader import (
    CardError, CardRead, CardRemoved, IdCardReader, ReaderState, ReaderThread,
)
from drivers.idcard.simulated import SAMPLE_CARDS, SimulatedReader, resident_card

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NAME, NUMBER = "张三", "11010519491231002X"


@pytest.fixture
def sim():
    with SimulatedReader() as s:
        yield s


def fast_reader(port, **kw):
    kw.setdefault("poll_interval", 0.1)
    kw.setdefault("reconnect_interval", 0.1)
    return IdCardReader(port, **kw)


class Events:
    """Runs a reader's loop in its thread and lets the test wait for events."""

    def __init__(self, reader):
        self.queue = queue.Queue()
        self.seen = []
        self.thread = ReaderThread(reader, self.queue.put)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.thread.stop()

    def wait_for(self, kind, timeout=3.0):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {kind.__name__} within {timeout} s; saw {self.seen}")
            try:
                event = self.queue.get(timeout=left)
            except queue.Empty:
                continue
            self.seen.append(event)
            if isinstance(event, kind):
                return event

    def drain(self, seconds):
        end = time.monotonic() + seconds
        out = []
        while (left := end - time.monotonic()) > 0:
            try:
                out.append(self.queue.get(timeout=left))
            except queue.Empty:
                break
        self.seen += out
        return out


# --- one-shot operations ----------------------------------------------------------------

def test_read_card_find_select_read_once(sim):
    sim.place()
    with IdCardReader(sim.link) as reader:
        card = reader.read_card()
        assert reader.baud == 115200
    assert card == resident_card().card
    assert (card.name, card.id_number) == (NAME, NUMBER)
    assert (sim.counts["find"], sim.counts["select"], sim.counts["read"]) == (1, 1, 1)
    assert sim.counts["status"] == 1  # checked once at open


@pytest.mark.parametrize("card_type", sorted(SAMPLE_CARDS))
def test_each_card_type(sim, card_type):
    sim.place(SAMPLE_CARDS[card_type]())
    with IdCardReader(sim.link, baud=115200) as reader:
        assert reader.read_card() == SAMPLE_CARDS[card_type]().card


def test_read_with_fingerprint_ignores_the_templates(sim):
    sim_card = resident_card()
    sim_card.fingerprints = bytes(range(256)) * 4
    sim.place(sim_card)
    with IdCardReader(sim.link, with_fingerprint=True) as reader:
        assert reader.read_card() == sim_card.card
    assert sim.counts["read_fp"] == 1


def test_sam_id_reset_and_additional_address(sim):
    sim_card = resident_card()
    sim_card.additional_address = "北京市海淀区测试路9号"
    sim.place(sim_card)
    with IdCardReader(sim.link) as reader:
        assert reader.sam_id() == "05.01-20101117-0052286551-2147484678"
        reader.read_card()
        assert reader.read_additional_address() == "北京市海淀区测试路9号"
        reader.reset_sam()
        with pytest.raises(F.ReadFailed):  # reset deactivated the card
            reader.read_additional_address()


def test_no_card(sim):
    with IdCardReader(sim.link) as reader:
        assert reader.find_card() is False
        with pytest.raises(F.NoCard):
            reader.read_card()


@pytest.mark.parametrize("sw3, error, message", [
    (0x41, F.ReadFailed, "card moved"),
    (0x81, F.SelectFailed, "place it again"),
    (0x80, F.NoCard, "no card"),
    (0x33, F.CardAuthFailed, "place it again"),
])
def test_injected_errors(sim, sw3, error, message):
    sim.place()
    sim.inject(sw3)
    with IdCardReader(sim.link) as reader:
        with pytest.raises(error, match=message) as caught:
            reader.read_card()
        assert caught.value.sw3 == sw3


def test_sam_fault_at_open(sim):
    sim.sam_status = 0x60
    reader = IdCardReader(sim.link)
    with pytest.raises(F.SamFault, match="self-test"):
        reader.open()
    assert not reader.is_open


def test_noise_before_every_reply(sim):
    sim.noise = b"\xAA\x00\xAA\xAA\x96\x13"  # stray bytes, a broken preamble
    sim.place()
    with IdCardReader(sim.link) as reader:
        assert reader.read_card().id_number == NUMBER
        assert reader.parser.stats.noise_bytes >= 6 * 3


def test_slow_and_chunked_answers(sim):
    sim.delay = 0.1
    sim.chunk_size = 7
    sim.chunk_gap = 0.001
    sim.place()
    with IdCardReader(sim.link, baud=115200) as reader:
        assert reader.read_card().name == NAME


@pytest.mark.slow
def test_an_answer_later_than_the_timeout(sim):
    with IdCardReader(sim.link) as reader:
        sim.delay = 1.6
        started = time.monotonic()
        with pytest.raises(F.ReaderTimeout, match="find card"):
            reader.find_card()
        assert 0.95 < time.monotonic() - started < 1.5  # find's 1 s timeout
        sim.delay = 0
        time.sleep(0.7)  # let the late answer go by; the next command flushes it
        sim.place()
        assert reader.read_card().name == NAME


def test_bad_frames_from_the_host_get_10_and_11(sim):
    with serial.serial_for_url(sim.link, baudrate=115200, timeout=1) as port:
        bad = bytearray(F.FIND_CARD.frame())
        bad[-1] ^= 1
        port.write(bytes(bad))
        assert port.read(11) == F.build_response(0x10)
        port.write(F.build_command(0x20, 0x01, b"\x00"))  # find with a stray data byte
        assert port.read(11) == F.build_response(0x11)
        port.write(F.build_command(0x77, 0x01, b"\x00"))
        assert port.read(11) == F.build_response(0x21)
        port.write(F.build_command(0x61, 0xFF, b"\x50"))  # §7.2, acknowledged
        assert port.read(11) == F.build_response(0x90)


# --- rates ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_baud_probing_finds_a_slower_reader():
    with SimulatedReader(baud=19200) as sim:
        sim.place()
        started = time.monotonic()
        with IdCardReader(sim.link) as reader:
            assert reader.baud == 19200
            assert time.monotonic() - started < 2.0  # three silent rates at 0.3 s each
            assert reader.read_card().name == NAME


@pytest.mark.slow
def test_a_fixed_wrong_baud_fails_clearly():
    with SimulatedReader(baud=9600) as sim:
        with pytest.raises(F.ReaderTimeout, match="no ID-card reader answered"):
            IdCardReader(sim.link, baud=115200).open()


def test_set_baud_switches_both_sides(sim):
    sim.place()
    with IdCardReader(sim.link) as reader:
        reader.set_baud(9600)
        assert (sim.baud, reader.baud) == (9600, 9600)
        assert reader.read_card().name == NAME
    with IdCardReader(sim.link, probe_timeout=0.1) as reader:  # a new session probes its way to 9600
        assert reader.baud == 9600


# --- port errors ---------------------------------------------------------------------------

def test_missing_port():
    with pytest.raises(F.PortError, match="not found.*by-id"):
        IdCardReader("/dev/does-not-exist-idcard").open()


def refusing_factory(code, text):
    def factory(port, **kw):
        raise serial.SerialException(code, f"could not open port {port}: [Errno {code}] {text}")
    return factory


def test_permission_denied_names_the_dialout_group():
    reader = IdCardReader("/dev/ttyUSB9", serial_factory=refusing_factory(errno.EACCES, "Permission denied"))
    with pytest.raises(F.PortError, match="dialout"):
        reader.open()


def test_a_device_the_service_may_not_open_is_not_a_group_problem():
    # EPERM from the device cgroup (DeviceAllow= without the driver loaded at start)
    reader = IdCardReader("/dev/ttyUSB9", serial_factory=refusing_factory(errno.EPERM,
                                                                          "Operation not permitted"))
    with pytest.raises(F.PortError, match="DeviceAllow.*restart pingjia-terminal") as raised:
        reader.open()
    assert "usermod" not in str(raised.value)


def test_a_second_opener_is_refused(sim):
    with IdCardReader(sim.link):
        with pytest.raises(F.PortError, match="in use"):
            IdCardReader(sim.link).open()


def test_close_is_idempotent(sim):
    reader = IdCardReader(sim.link).open()
    reader.close()
    reader.close()
    assert not reader.is_open
    with pytest.raises(F.ReaderDisconnected):
        reader.find_card()


# --- the event loop ------------------------------------------------------------------------

@pytest.mark.parametrize("presence_check, rediscover", [
    ("address", False), ("address", True), ("find", False), ("find", True),
])
def test_one_read_per_placement(presence_check, rediscover):
    with SimulatedReader(rediscover=rediscover) as sim:
        reader = fast_reader(sim.link, presence_check=presence_check)
        with Events(reader) as ev:
            assert ev.wait_for(ReaderState).state == "connected"
            sim.place()
            assert ev.wait_for(CardRead).card.name == NAME
            later = ev.drain(0.6)  # the card stays on the reader
            assert not any(isinstance(e, CardRead) for e in later)
            assert sim.counts["read"] == 1
            sim.remove()
            # With "find" on a SAM that keeps a read card activated, find fails at
            # once, so the removal is reported while the card still lies there; the
            # card is not read again all the same.
            if not any(isinstance(e, CardRemoved) for e in later):
                ev.wait_for(CardRemoved)
            sim.place()
            ev.wait_for(CardRead)
            assert sim.counts["read"] == 2


def test_a_failed_read_asks_to_replace_and_is_not_retried_in_place(sim):
    with Events(fast_reader(sim.link)) as ev:
        ev.wait_for(ReaderState)
        sim.inject(0x41)
        sim.place()
        error = ev.wait_for(CardError)
        assert error.kind == "read_failed"
        assert "lift the card and place it again" in error.message
        assert not any(isinstance(e, (CardRead, CardError)) for e in ev.drain(0.5))
        sim.remove()
        ev.wait_for(CardRemoved)
        sim.place()
        assert ev.wait_for(CardRead).card.id_number == NUMBER


def test_select_failure_event(sim):
    with Events(fast_reader(sim.link)) as ev:
        ev.wait_for(ReaderState)
        sim.inject(0x81)
        sim.place()
        error = ev.wait_for(CardError)
        assert error.kind == "select_failed" and "place it again" in error.message


def test_a_sam_without_30_03_falls_back_to_find(sim):
    reader = fast_reader(sim.link)
    with Events(reader) as ev:
        ev.wait_for(ReaderState)
        sim.inject(0x21, F.READ_ADDRESS.code)
        sim.place()
        ev.wait_for(CardRead)
        later = ev.drain(0.4)
        assert reader.presence_check == "find"
        assert sim.counts["read"] == 1
        assert sim.counts["address"] == 1
        assert not any(isinstance(e, CardRead) for e in later)


def test_unplug_and_replug_reconnects_within_2_s(sim):
    with Events(fast_reader(sim.link)) as ev:
        assert ev.wait_for(ReaderState).state == "connected"
        sim.unplug()
        assert ev.wait_for(ReaderState).state == "disconnected"
        time.sleep(0.5)  # stays away for a while: no flood of events meanwhile
        assert not any(isinstance(e, ReaderState) for e in ev.drain(0.1))
        sim.replug()
        back = time.monotonic()
        assert ev.wait_for(ReaderState, timeout=2.0).state == "connected"
        assert time.monotonic() - back < 2.0
        sim.place()
        assert ev.wait_for(CardRead).card.name == NAME


def test_loop_waits_for_a_reader_that_is_not_there_yet(sim):
    sim.unplug()
    with Events(fast_reader(sim.link)) as ev:
        state = ev.wait_for(ReaderState)
        assert state.state == "disconnected" and "not found" in state.detail
        sim.replug()
        assert ev.wait_for(ReaderState).state == "connected"


def test_sam_fault_is_reported_then_recovers(sim):
    sim.sam_status = 0x60
    with Events(fast_reader(sim.link)) as ev:
        state = ev.wait_for(ReaderState)
        assert state.state == "sam_fault" and "self-test" in state.detail
        sim.sam_status = 0x90
        assert ev.wait_for(ReaderState).state == "connected"


def test_sam_fault_during_polling_reconnects(sim):
    with Events(fast_reader(sim.link)) as ev:
        ev.wait_for(ReaderState)
        sim.inject(0x60, F.FIND_CARD.code)
        state = ev.wait_for(ReaderState)
        assert state.state == "sam_fault"
        assert ev.wait_for(ReaderState).state == "connected"
        assert sim.counts["status"] == 2


def test_rejected_commands_make_the_loop_start_over(sim):
    with Events(fast_reader(sim.link)) as ev:
        ev.wait_for(ReaderState)
        sim.inject(0x21, F.FIND_CARD.code)
        sim.inject(0x21, F.FIND_CARD.code)
        state = ev.wait_for(ReaderState)
        assert state == ReaderState("disconnected", "the reader rejects our commands")
        assert ev.wait_for(ReaderState).state == "connected"


@pytest.mark.slow
def test_a_reader_that_falls_silent_is_reopened_and_reprobed(sim):
    with Events(fast_reader(sim.link, probe_timeout=0.1)) as ev:
        ev.wait_for(ReaderState)
        sim.baud = 9600  # e.g. another program switched its rate: frames go unanswered
        state = ev.wait_for(ReaderState, timeout=4)
        assert state == ReaderState("disconnected", "the reader stopped answering")
        assert ev.wait_for(ReaderState) == ReaderState("connected", "9600 baud")
        sim.place()
        assert ev.wait_for(CardRead).card.name == NAME


def test_events_on_an_open_reader_start_with_connected(sim):
    reader = fast_reader(sim.link).open()
    stop = threading.Event()
    events = reader.events(stop)
    assert next(events) == ReaderState("connected", "115200 baud")
    sim.place()
    assert next(events) == CardRead(resident_card().card)
    stop.set()
    assert list(events) == []
    reader.close()


def test_stop_is_prompt_and_closes_the_port(sim):
    reader = fast_reader(sim.link, poll_interval=0.5)
    thread = ReaderThread(reader, lambda event: None).start()
    time.sleep(0.2)
    started = time.monotonic()
    thread.stop()
    assert time.monotonic() - started < 0.5
    assert not reader.is_open


def test_close_from_another_thread_ends_the_loop(sim):
    reader = fast_reader(sim.link)
    seen = []
    thread = threading.Thread(target=reader.run, args=(seen.append, threading.Event()))
    thread.start()
    time.sleep(0.3)
    reader.close()
    thread.join(timeout=1)
    assert not thread.is_alive()
    assert not reader.is_open  # and not reopened by the loop on its way out
    assert seen == [ReaderState("connected", "115200 baud")]


def test_no_personal_data_in_logs(sim, caplog):
    caplog.set_level(logging.DEBUG)
    with Events(fast_reader(sim.link)) as ev:
        ev.wait_for(ReaderState)
        sim.place()
        ev.wait_for(CardRead)
        sim.inject(0x41)
        sim.remove()
        ev.wait_for(CardRemoved)
        sim.place()
        ev.wait_for(CardError)
    assert "card read" in caplog.text and "1101**********002X" in caplog.text
    assert NAME not in caplog.text and NUMBER not in caplog.text
    assert all(NAME not in repr(e) and NUMBER not in repr(e) for e in ev.seen)
