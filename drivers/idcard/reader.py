"""pyserial driver for SAM-based ID-card readers (protocol: idcard-protocol.md).

Blocking by design: run `events()` / `run()` in a thread of its own (see
`ReaderThread`) and hand the events to the application's queue. One thread per
reader; `close()` may be called from any thread and also ends the event loop.

Never log or print a card's name or number: a Card's repr is masked, log that.
"""
from __future__ import annotations

import errno
import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Optional, Sequence, Union

import serial

from . import frames as F
from .cards import Card, CardFormatError, decode_read_payload
from .frames import (
    CardFault, Command, FrameParser, NoCard, PortError, ReaderDisconnected,
    ReaderIOError, ReaderTimeout, Response, SamFault, StatusError,
)

log = logging.getLogger(__name__)

PROBE_ORDER = (115200, 57600, 38400, 19200, 9600)

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
_REPLACE_MESSAGE = "the card could not be read, lift it and place it again"
_READ_SLICE = 0.05  # serial read timeout: how often the wait loop checks its deadline
_IO_ERRORS: tuple = (serial.SerialException, OSError)
try:  # termios.error is what tcflush raises on a hung-up tty
    import termios

    _IO_ERRORS += (termios.error,)
except ImportError:  # pragma: no cover - not a POSIX system
    pass


# --- events ----------------------------------------------------------------------


@dataclass(frozen=True)
class CardRead:
    card: Card


@dataclass(frozen=True)
class CardError:
    """A card was placed but not read; `message` is fit to show the person."""

    kind: str
    message: str


@dataclass(frozen=True)
class CardRemoved:
    """The card that was read (or failed) has left the reader."""


@dataclass(frozen=True)
class ReaderState:
    state: str  # "connected", "disconnected", "sam_fault"
    detail: str = ""


Event = Union[CardRead, CardError, CardRemoved, ReaderState]


def _port_error(port: str, exc: Exception) -> PortError:
    code = getattr(exc, "errno", None)
    text = str(exc)
    if code == errno.ENOENT or "No such file" in text:
        msg = (f"reader port {port} not found: check the cable and the name "
               f"(prefer a stable /dev/serial/by-id/... path)")
    elif code == errno.EPERM or "Operation not permitted" in text:
        # not the file's permissions (that is EACCES): the device cgroup refused it
        msg = (f"operation not permitted on {port}: the service's device list (systemd "
               "DeviceAllow=) refused it, usually because the USB-serial driver was not "
               "loaded when the service started; the dialout group does not help here: "
               "sudo systemctl restart pingjia-terminal (the shipped unit loads usbserial "
               "and cdc_acm before it starts; pingjia doctor checks the modules)")
    elif code == errno.EACCES or "Permission denied" in text:
        msg = (f"permission denied on {port}: add the user to the dialout group "
               f"(sudo usermod -aG dialout $USER, then log in again)")
    elif code in (errno.EBUSY, errno.EAGAIN) or "exclusively lock" in text:
        msg = f"{port} is in use by another process (only one program may open the reader)"
    else:
        msg = f"cannot open {port}: {exc}"
    return PortError(msg)


class IdCardReader:
    """A SAM ID-card reader on a serial port.

    port: device path or pyserial URL. Prefer /dev/serial/by-id/...: a USB-serial
    reader's /dev/ttyUSBn number can change when it is replugged (§8.2-5).
    baud: None probes PROBE_ORDER with the SAM status command.
    presence_check: how the loop tells that a read card has left (§8.2-1).
      "address" polls 30 03, which only answers while the card is still activated;
      a SAM that rejects 30 03 (SW3 21/23) is switched to "find" automatically.
      "find" treats `removal_polls` consecutive failed finds as removal.
    clock/sleep/serial_factory are injectable for tests; serial_factory is called as
    factory(port, baudrate=, timeout=, write_timeout=, exclusive=True).
    """

    def __init__(self, port: str, baud: Optional[int] = None, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 serial_factory: Callable[..., serial.SerialBase] = serial.serial_for_url,
                 with_fingerprint: bool = False,
                 poll_interval: float = 0.4,
                 removal_polls: int = 2,
                 presence_check: str = "address",
                 reconnect_interval: float = 0.3,
                 probe_bauds: Sequence[int] = PROBE_ORDER,
                 probe_timeout: float = 0.3,
                 max_failures: int = 2) -> None:
        if baud is not None and baud not in F.BAUD_CODES:
            raise ValueError(f"unsupported baud rate {baud}; choose one of {list(PROBE_ORDER)}")
        if presence_check not in ("address", "find"):
            raise ValueError("presence_check must be 'address' or 'find'")
        self.port = port
        self._requested_baud = baud
        self._baud: Optional[int] = baud
        self._clock = clock
        self._sleep = sleep
        self._serial_factory = serial_factory
        self.with_fingerprint = with_fingerprint
        self.poll_interval = poll_interval
        self.removal_polls = removal_polls
        self.presence_check = presence_check
        self.reconnect_interval = reconnect_interval
        self.probe_bauds = tuple(probe_bauds)
        self.probe_timeout = probe_timeout
        self.max_failures = max_failures
        self.parser = FrameParser()
        self.stale_responses = 0
        self._serial: Optional[serial.SerialBase] = None
        self._closed = False
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
        return self._serial is not None

    def open(self) -> "IdCardReader":
        """Open the port, find the rate if needed and check the SAM (raises on failure)."""
        self._closed = False
        if not self.is_open:
            self._connect()
        return self

    def close(self) -> None:
        """Close the port; safe to call twice and from another thread (ends events())."""
        self._closed = True
        got = self._io.acquire(timeout=10)
        try:
            self._close_port()
        finally:
            if got:
                self._io.release()

    def __enter__(self) -> "IdCardReader":
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connect(self) -> None:
        with self._io:
            self._connect_locked()

    def _connect_locked(self) -> None:
        if self._requested_baud is not None:
            rates = [self._requested_baud]
        else:
            # The last rate that worked first: a replugged reader comes back at it,
            # and this keeps reconnection well under the probe's worst case.
            rates = [b for b in (self._baud,) if b] + [b for b in self.probe_bauds if b != self._baud]
        self._open_port(rates[0])
        try:
            for i, rate in enumerate(rates):
                if i:
                    self._set_port_rate(rate)
                timeout = self.probe_timeout if len(rates) > 1 else None
                try:
                    response = self._transact(F.SAM_STATUS, timeout)
                except ReaderTimeout:
                    continue
                self._baud = rate
                # Any valid frame proves the rate; a failure status is the SAM's own.
                F.check(F.SAM_STATUS, response)
                log.info("ID-card reader on %s at %d baud", self.port, rate)
                return
            raise ReaderTimeout(f"no ID-card reader answered on {self.port} at "
                                f"{', '.join(map(str, rates))} baud")
        except BaseException:
            self._close_port()
            raise

    def _open_port(self, baud: int) -> None:
        try:
            ser = self._serial_factory(self.port, baudrate=baud, timeout=_READ_SLICE,
                                       write_timeout=1.0, exclusive=True)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise _port_error(self.port, exc) from exc
        self._serial = ser

    def _set_port_rate(self, baud: int) -> None:
        ser = self._serial
        if ser is None:
            raise ReaderDisconnected(f"{self.port} is not open")
        try:
            ser.baudrate = baud
        except _IO_ERRORS as exc:
            raise ReaderDisconnected(f"lost the reader on {self.port}: {exc}") from exc

    def _close_port(self) -> None:
        ser, self._serial = self._serial, None
        if ser is not None:
            try:
                ser.close()
            except _IO_ERRORS:
                pass  # the device is already gone; nothing left to release

    # --- one command ------------------------------------------------------------

    def timeout_for(self, command: Command) -> float:
        base = _BASE_TIMEOUT.get(command, 1.0)
        return base + 2 * F.wire_seconds(_LONGEST_ANSWER.get(command, 11), self._baud or 9600)

    def _transact(self, command: Command, timeout: Optional[float] = None) -> Response:
        """Send one command and wait for its answer (not checked for success)."""
        with self._io:
            return self._transact_locked(command, timeout)

    def _transact_locked(self, command: Command, timeout: Optional[float]) -> Response:
        ser = self._serial
        if ser is None:
            raise ReaderDisconnected(f"{self.port} is not open")
        if timeout is None:
            timeout = self.timeout_for(command)
        try:
            # Drop anything left over (late answers, noise) so it is not taken for
            # this command's answer (§8.2-3).
            ser.reset_input_buffer()
            self.parser.reset()
            ser.write(command.frame())
            deadline = self._clock() + timeout
            while True:
                chunk = ser.read(ser.in_waiting or 1)
                found = self._accept(command, self.parser.feed(chunk))
                if found is not None:
                    return found
                if self._clock() >= deadline:
                    found = self._accept(command, self.parser.abandon())
                    if found is not None:
                        return found
                    raise ReaderTimeout(f"no answer to {command} within {timeout:.1f} s")
        except _IO_ERRORS as exc:
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
        return F.check(command, self._transact(command, timeout))

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
            self._set_port_rate(baud)
        self._baud = baud
        if self._requested_baud is not None:
            self._requested_baud = baud
        self.sam_status()

    def find_card(self) -> bool:
        response = self._transact(F.FIND_CARD)
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
        response = self._transact(F.READ_ADDRESS)
        if response.sw3 == F.SW3_NO_CONTENT:
            return None
        F.check(F.READ_ADDRESS, response)
        return response.data.decode("utf-16-le", errors="replace").strip(" \x00")

    def wait_for_card(self, timeout: float, stop: Optional[threading.Event] = None) -> Card:
        """Poll for a placement for up to `timeout` seconds, then read it once."""
        deadline = self._clock() + timeout
        while True:
            started = self._clock()
            if self.find_card():
                self.select_card()
                return self.read_selected()
            if self._clock() + self.poll_interval > deadline or (stop and stop.is_set()):
                raise NoCard(0x80, f"no card was placed within {timeout:g} s", F.FIND_CARD)
            self._pause(self.poll_interval - (self._clock() - started), stop)

    def _pause(self, seconds: float, stop: Optional[threading.Event]) -> None:
        if seconds <= 0:
            return
        # Waiting on the stop event lets a stop request end the pause at once.
        if stop is not None:
            stop.wait(seconds)
        else:
            self._sleep(seconds)

    def _card_present(self) -> bool:
        if self.presence_check == "address":
            response = self._transact(F.READ_ADDRESS)
            if response.sw3 in (F.SW3_OK, F.SW3_NO_CONTENT):
                return True
            if response.sw3 not in (0x21, 0x23):
                return False
            log.info("reader does not support 30 03; detecting card removal with find")
            self.presence_check = "find"
        return self._transact(F.FIND_CARD).sw3 == F.SW3_FOUND

    # --- the loop -----------------------------------------------------------------

    def events(self, stop: Optional[threading.Event] = None) -> Iterator[Event]:
        """Yield reader events until `stop` is set or close() is called.

        Polls find every `poll_interval`; reads each placement once, then waits for
        the card to leave; reopens the port after I/O errors (unplug) every
        `reconnect_interval`. ReaderState events are sent on changes only.
        """
        stop = stop or threading.Event()
        self._closed = False
        loop = _Loop()
        if self.is_open:
            yield loop.report("connected", f"{self._baud} baud")
        while not stop.is_set() and not self._closed:
            started = self._clock()
            if not self.is_open:
                state = self._try_connect(loop)
                if state is not None:
                    yield state
                if not self.is_open:
                    self._pause(self.reconnect_interval, stop)
                    continue
            lost: Optional[ReaderState] = None
            try:
                yield from self._poll(loop)
                loop.failures = 0
            except ReaderTimeout as exc:
                lost = self._after_failure(loop, exc, "the reader stopped answering")
            except ReaderIOError as exc:
                if self._closed:
                    break
                log.warning("ID-card reader: %s", exc)
                self._close_port()
                lost = loop.report("disconnected", str(exc))
            except SamFault as exc:
                log.warning("ID-card reader: %s", exc)
                self._close_port()  # reconnecting re-checks the SAM until it recovers
                lost = loop.report("sam_fault", exc.message)
            except StatusError as exc:
                # E.g. find answered 21: our frames or the reader's protocol are off.
                lost = self._after_failure(loop, exc, "the reader rejects our commands")
            if lost is not None:
                yield lost
            if self.is_open:
                self._pause(self.poll_interval - (self._clock() - started), stop)

    def _after_failure(self, loop: "_Loop", exc: Exception, why: str) -> Optional[ReaderState]:
        """Count a failed exchange; after `max_failures` in a row, start over."""
        log.warning("ID-card reader: %s", exc)
        loop.failures += 1
        if loop.failures < self.max_failures:
            return None
        self._close_port()
        return loop.report("disconnected", why)

    def run(self, callback: Callable[[Event], None], stop: threading.Event) -> None:
        """Call `callback` with each event until `stop` is set; closes the port at the end."""
        try:
            for event in self.events(stop):
                callback(event)
        finally:
            self.close()

    def _try_connect(self, loop: "_Loop") -> Optional[ReaderState]:
        try:
            with self._io:
                if self._closed:  # close() from another thread won the race
                    return None
                self._connect_locked()
        except SamFault as exc:
            return loop.report("sam_fault", exc.message)
        except (ReaderIOError, StatusError) as exc:
            return loop.report("disconnected", str(exc))
        # A replugged reader re-powers its SAM, so a card left on it is found and
        # read again; the application sees the same card twice, never a lost one.
        loop.removal_pending = False
        loop.failures = 0
        return loop.report("connected", f"{self._baud} baud")

    def _poll(self, loop: "_Loop") -> Iterator[Event]:
        if loop.removal_pending:
            if self._card_present():
                loop.absent = 0
            else:
                loop.absent += 1
                if loop.absent >= self.removal_polls:
                    loop.removal_pending = False
                    yield CardRemoved()
            return
        if not self.find_card():
            return
        # From here on the card counts as handled, whatever happens: it is not read
        # again until it has left (one read per placement, §8.2-1).
        loop.removal_pending, loop.absent = True, 0
        try:
            self.select_card()
            card = self.read_selected()
        except CardFault as exc:
            log.info("card not read: %s", exc)
            yield CardError(exc.kind, exc.message)
            return
        except NoCard as exc:
            log.info("card not read: %s", exc)
            yield CardError(exc.kind, "the card was taken away before it was read, place it again")
            return
        except StatusError as exc:
            if isinstance(exc, SamFault):
                raise
            log.warning("card not read: %s", exc)
            yield CardError(exc.kind, _REPLACE_MESSAGE)
            return
        except CardFormatError as exc:
            log.info("card data not understood: %s", exc)
            yield CardError(exc.kind, _REPLACE_MESSAGE)
            return
        except ReaderTimeout:
            yield CardError("timeout", "the reader did not finish, lift the card and place it again")
            raise
        log.info("card read: %r", card)
        yield CardRead(card)


class _Loop:
    """Mutable state of one events() run."""

    def __init__(self) -> None:
        self.state: Optional[str] = None
        self.removal_pending = False
        self.absent = 0
        self.failures = 0  # failed exchanges in a row

    def report(self, state: str, detail: str) -> Optional[ReaderState]:
        # Report changes only: a reader that stays unplugged is not news every 300 ms.
        if state == self.state:
            return None
        self.state = state
        return ReaderState(state, detail)


class ReaderThread:
    """Runs a reader's event loop in a daemon thread, feeding `callback`.

    The callback runs in the reader thread: it should only put the event on the
    application's queue.
    """

    def __init__(self, reader: IdCardReader, callback: Callable[[Event], None]) -> None:
        self.reader = reader
        self._stop = threading.Event()
        self._thread = threading.Thread(target=reader.run, args=(callback, self._stop),
                                        name="idcard-reader", daemon=True)

    def start(self) -> "ReaderThread":
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def __enter__(self) -> "ReaderThread":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
