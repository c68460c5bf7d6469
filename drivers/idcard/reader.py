"""The polling loop the terminal runs on an ID-card reader: placements, removals, faults.

Blocking by design: run `events()` / `run()` in a thread of its own (see
`ReaderThread`) and hand the events to the application's queue. One thread per
reader; `close()` may be called from any thread and also ends the event loop.
The exchanges themselves are session.py, the port port.py; section numbers (§) are
those of docs/idcard-protocol.md.

Never log or print a card's name or number: a Card's repr is masked, log that.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Optional, Sequence, Union

import serial

from . import frames as F
from .cards import Card, CardFormatError
from .frames import CardFault, NoCard, ReaderIOError, ReaderTimeout, SamFault, StatusError
from .port import PROBE_ORDER
from .session import CardSession

log = logging.getLogger(__name__)

_REPLACE_MESSAGE = "the card could not be read, lift it and place it again"


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


class IdCardReader(CardSession):
    """A SAM ID-card reader on a serial port: the session's commands plus polling.

    port, baud, clock, serial_factory, with_fingerprint, probe_bauds, probe_timeout:
    see CardSession.
    presence_check: how the loop tells that a read card has left (§8.2-1).
      "address" polls 30 03, which only answers while the card is still activated;
      a SAM that rejects 30 03 (SW3 21/23) is switched to "find" automatically.
      "find" treats `removal_polls` consecutive failed finds as removal.
    sleep is injectable for tests.
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
        super().__init__(port, baud, clock=clock, serial_factory=serial_factory,
                         with_fingerprint=with_fingerprint, probe_bauds=probe_bauds,
                         probe_timeout=probe_timeout)
        if presence_check not in ("address", "find"):
            raise ValueError("presence_check must be 'address' or 'find'")
        self._sleep = sleep
        self.poll_interval = poll_interval
        self.removal_polls = removal_polls
        self.presence_check = presence_check
        self.reconnect_interval = reconnect_interval
        self.max_failures = max_failures
        self._closed = False

    def open(self) -> "IdCardReader":
        """Open the port, find the rate if needed and check the SAM (raises on failure)."""
        self._closed = False
        super().open()
        return self

    def close(self) -> None:
        """Close the port; safe to call twice and from another thread (ends events())."""
        self._closed = True
        super().close()

    def __enter__(self) -> "IdCardReader":
        return self.open()

    # --- waiting for a card -------------------------------------------------------

    def wait_for_card(self, timeout: float, stop: Optional[threading.Event] = None) -> Card:
        """Poll for a placement for up to `timeout` seconds, then read it once."""
        deadline = self.clock() + timeout
        while True:
            started = self.clock()
            if self.find_card():
                self.select_card()
                return self.read_selected()
            if self.clock() + self.poll_interval > deadline or (stop and stop.is_set()):
                raise NoCard(0x80, f"no card was placed within {timeout:g} s", F.FIND_CARD)
            self._pause(self.poll_interval - (self.clock() - started), stop)

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
            response = self.transact(F.READ_ADDRESS)
            if response.sw3 in (F.SW3_OK, F.SW3_NO_CONTENT):
                return True
            if response.sw3 not in (0x21, 0x23):
                return False
            log.info("reader does not support 30 03; detecting card removal with find")
            self.presence_check = "find"
        return self.transact(F.FIND_CARD).sw3 == F.SW3_FOUND

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
            yield loop.report("connected", f"{self.baud} baud")
        while not stop.is_set() and not self._closed:
            started = self.clock()
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
                self.close_port()
                lost = loop.report("disconnected", str(exc))
            except SamFault as exc:
                log.warning("ID-card reader: %s", exc)
                self.close_port()  # reconnecting re-checks the SAM until it recovers
                lost = loop.report("sam_fault", exc.message)
            except StatusError as exc:
                # E.g. find answered 21: our frames or the reader's protocol are off.
                lost = self._after_failure(loop, exc, "the reader rejects our commands")
            if lost is not None:
                yield lost
            if self.is_open:
                self._pause(self.poll_interval - (self.clock() - started), stop)

    def _after_failure(self, loop: "_Loop", exc: Exception, why: str) -> Optional[ReaderState]:
        """Count a failed exchange; after `max_failures` in a row, start over."""
        log.warning("ID-card reader: %s", exc)
        loop.failures += 1
        if loop.failures < self.max_failures:
            return None
        self.close_port()
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
            if not self.connect(cancelled=lambda: self._closed):
                return None  # close() from another thread won the race
        except SamFault as exc:
            return loop.report("sam_fault", exc.message)
        except (ReaderIOError, StatusError) as exc:
            return loop.report("disconnected", str(exc))
        # A replugged reader re-powers its SAM, so a card left on it is found and
        # read again; the application sees the same card twice, never a lost one.
        loop.removal_pending = False
        loop.failures = 0
        return loop.report("connected", f"{self.baud} baud")

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
