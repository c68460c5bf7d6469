"""Commands to a SAM ID-card reader and their answers, one exchange at a time.

Section numbers (§) are those of docs/idcard-protocol.md: the commands are §3, the status
codes §4, the timeouts §8.1. The port itself (opening, rates, probing) is port.py; the
polling loop built on these exchanges is reader.py.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Optional, Sequence

import serial

from . import frames as F
from .cards import Card, decode_read_payload
from .frames import Command, FrameParser, NoCard, ReaderDisconnected, ReaderTimeout, Response
from .port import IO_ERRORS, PROBE_ORDER, SerialPort, rates_to_try

log = logging.getLogger(__name__)

# Base timeouts from §8.1 (find/select ≥1 s, read ≥3 s, address 1.5 s); twice the
# wire time of the longest answer at the current rate is added, which gives the ≥5 s
# the document asks for at 9600.
_BASE_TIMEOUT = {
    F.FIND_CARD: 1.0, F.SELECT_CARD: 1.0, F.READ_BASE: 3.0, F.READ_BASE_FP: 3.0,
    F.READ_ADDRESS: 1.5, F.SAM_STATUS: 1.0, F.SAM_ID: 1.0, F.RESET_SAM: 1.0,
}
_LONGEST_ANSWER = {
    F.FIND_CARD: 15, F.SELECT_CARD: 19, F.READ_BASE: 1295, F.READ_BASE_FP: 2321,
    F.READ_ADDRESS: 81, F.SAM_ID: 27,
}


class CardSession:
    """The command exchanges with a SAM ID-card reader on a serial port.

    port: device path or pyserial URL. Prefer /dev/serial/by-id/...: a USB-serial
    reader's /dev/ttyUSBn number can change when it is replugged (§8.2-5).
    baud: None probes `probe_bauds` with the SAM status command.
    clock/serial_factory are injectable for tests; serial_factory is called as
    factory(port, baudrate=, timeout=, write_timeout=, exclusive=True).
    """

    def __init__(self, port: str, baud: Optional[int] = None, *,
                 clock: Callable[[], float] = time.monotonic,
                 serial_factory: Callable[..., serial.SerialBase] = serial.serial_for_url,
                 with_fingerprint: bool = False,
                 probe_bauds: Sequence[int] = PROBE_ORDER,
                 probe_timeout: float = 0.3) -> None:
        if baud is not None and baud not in F.BAUD_CODES:
            raise ValueError(f"unsupported baud rate {baud}; choose one of {list(PROBE_ORDER)}")
        self.port = port
        self.line = SerialPort(port, serial_factory)
        self.clock = clock
        self.with_fingerprint = with_fingerprint
        self.probe_bauds = tuple(probe_bauds)
        self.probe_timeout = probe_timeout
        self.parser = FrameParser()
        self.stale_responses = 0
        self._requested_baud = baud
        self._baud: Optional[int] = baud
        # Held for every exchange, so close() from another thread never pulls the
        # port from under a read in progress.
        self._io = threading.RLock()

    # --- connection -------------------------------------------------------------

    @property
    def baud(self) -> Optional[int]:
        """The rate in use (or last used): known after open()."""
        return self._baud

    @property
    def is_open(self) -> bool:
        return self.line.is_open

    def open(self) -> "CardSession":
        """Open the port, find the rate if needed and check the SAM (raises on failure)."""
        if not self.is_open:
            self.connect()
        return self

    def close(self) -> None:
        """Close the port once no exchange is in progress; safe to call twice and from
        another thread."""
        got = self._io.acquire(timeout=10)
        try:
            self.close_port()
        finally:
            if got:
                self._io.release()

    def close_port(self) -> None:
        """Close the port at once, from the thread that does the exchanges."""
        self.line.close()

    def __enter__(self) -> "CardSession":
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self, cancelled: Callable[[], bool] = lambda: False) -> bool:
        """Open the port, find the rate and check the SAM (raises on failure).

        `cancelled` is asked once the lock is held: if it says so (a close() from
        another thread won the race), nothing is opened and this returns False.
        """
        with self._io:
            if cancelled():
                return False
            rates = rates_to_try(self._requested_baud, self._baud, self.probe_bauds)
            self._baud, response = self.line.probe(rates, self.probe_timeout, self._ask_status)
            try:
                # Any valid frame proves the rate; a failure status is the SAM's own.
                F.check(F.SAM_STATUS, response)
            except BaseException:
                self.close_port()
                raise
            log.info("ID-card reader on %s at %d baud", self.port, self._baud)
            return True

    def _ask_status(self, timeout: Optional[float]) -> Response:
        return self.transact(F.SAM_STATUS, timeout)

    # --- one command ------------------------------------------------------------

    def timeout_for(self, command: Command) -> float:
        base = _BASE_TIMEOUT.get(command, 1.0)
        return base + 2 * F.wire_seconds(_LONGEST_ANSWER.get(command, 11), self._baud or 9600)

    def transact(self, command: Command, timeout: Optional[float] = None) -> Response:
        """Send one command and wait for its answer (not checked for success)."""
        with self._io:
            return self._transact_locked(command, timeout)

    def _transact_locked(self, command: Command, timeout: Optional[float]) -> Response:
        ser = self.line.device()
        if timeout is None:
            timeout = self.timeout_for(command)
        try:
            # Drop anything left over (late answers, noise) so it is not taken for
            # this command's answer (§8.2-3).
            ser.reset_input_buffer()
            self.parser.reset()
            ser.write(command.frame())
            deadline = self.clock() + timeout
            while True:
                chunk = ser.read(ser.in_waiting or 1)
                found = self._accept(command, self.parser.feed(chunk))
                if found is not None:
                    return found
                if self.clock() >= deadline:
                    found = self._accept(command, self.parser.abandon())
                    if found is not None:
                        return found
                    raise ReaderTimeout(f"no answer to {command} within {timeout:.1f} s")
        except IO_ERRORS as exc:
            raise ReaderDisconnected(f"lost the reader on {self.port}: {exc}") from exc

    def _accept(self, command: Command, responses: Sequence[Response]) -> Optional[Response]:
        for response in responses:
            if F.answers(command, response):
                return response
            self.stale_responses += 1
            log.debug("dropped an answer that does not fit %s: %r", command, response)
        return None

    def command(self, command: Command, timeout: Optional[float] = None) -> Response:
        """Send a command; return its answer or raise the StatusError for its SW3."""
        return F.check(command, self.transact(command, timeout))

    # --- card operations ----------------------------------------------------------

    def sam_status(self) -> None:
        self.command(F.SAM_STATUS)

    def sam_id(self) -> str:
        return F.parse_sam_id(self.command(F.SAM_ID).data)

    def reset_sam(self) -> None:
        self.command(F.RESET_SAM)

    def set_baud(self, baud: int) -> None:
        """Switch the reader's UART rate (60 xx) and follow it."""
        with self._io:
            self.command(F.set_baud_command(baud))  # acknowledged at the old rate
            self.line.set_rate(baud)
        self._baud = baud
        if self._requested_baud is not None:
            self._requested_baud = baud
        self.sam_status()

    def find_card(self) -> bool:
        response = self.transact(F.FIND_CARD)
        if response.sw3 == F.SW3_FOUND:
            return True
        if response.sw3 == 0x80:
            return False
        raise F.status_error(response.sw3, F.FIND_CARD)

    def select_card(self) -> None:
        self.command(F.SELECT_CARD)

    def read_selected(self) -> Card:
        """Read the text of a card already found and selected."""
        cmd = F.READ_BASE_FP if self.with_fingerprint else F.READ_BASE
        return decode_read_payload(self.command(cmd).data, self.with_fingerprint)

    def read_card(self) -> Card:
        """find → select → read once; raises NoCard if nothing is (newly) on the reader."""
        if not self.find_card():
            raise NoCard(0x80, command=F.FIND_CARD)
        self.select_card()
        return self.read_selected()

    def read_additional_address(self) -> Optional[str]:
        """The 追加住址 of the selected card, or None if it has none (SW3 91)."""
        response = self.transact(F.READ_ADDRESS)
        if response.sw3 == F.SW3_NO_CONTENT:
            return None
        F.check(F.READ_ADDRESS, response)
        return response.data.decode("utf-16-le", errors="replace").strip(" \x00")
