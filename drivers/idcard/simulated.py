"""A byte-exact simulated ID-card reader on a pseudo-terminal.

The driver opens `sim.link` (a stable symlink, like a udev /dev/serial/by-id name) and
talks the real protocol to a thread that plays the SAM. Tests and `pingjia simulate`
control it at runtime: place/remove cards, inject status codes, add noise, slow or
chunked answers, unplug and replug. All card data here is fictitious. Section numbers
(§) are those of docs/idcard-protocol.md.

    python -m drivers.idcard.simulated        # prints the port, then reads commands
"""
from __future__ import annotations

import argparse
import collections
import errno
import logging
import os
import select
import shutil
import sys
import tempfile
import termios
import threading
import time
import tty
from dataclasses import dataclass
from typing import Callable, Deque, Dict, Optional, Tuple, Union

from . import cards as C
from .frames import (
    BAUD_BY_CODE, BAUD_COMMAND, FIND_CARD, READ_ADDRESS, READ_BASE, READ_BASE_FP, RESET_SAM,
    SAM_ID, SAM_STATUS, SELECT_CARD, SW3_FOUND, SW3_NO_CONTENT, SW3_OK, CommandParser, Defect,
    RawCommand, build_response, wire_seconds,
)

log = logging.getLogger(__name__)

# The §3.1 example: formats as 05.01-20101117-0052286551-2147484678.
SAMPLE_SAM_ID = bytes.fromhex("05000100FDB7320157D41D0306040080")
ADDRESS_LEN = 70
SET_MAX_RF_BYTES = (0x61, 0xFF)  # 61 FF nn (§3), acknowledged and otherwise ignored


@dataclass
class SimCard:
    """A card as the simulator holds it: text data plus the parts the driver skips."""

    card: C.Card
    photo: bytes = bytes(C.PHOTO_LEN)
    fingerprints: bytes = b""
    additional_address: Optional[str] = None


def resident_card(**fields: str) -> SimCard:
    """The holder of docs/idcard-protocol.md §7.3 (fictitious)."""
    base = dict(
        card_type=C.RESIDENT, name="张三", id_number="11010519491231002X", gender="1",
        nation="01", birth_date="19491231", address="北京市朝阳区测试路1号",
        issuer="北京市公安局朝阳分局", valid_from="20200101", valid_until="20400101",
    )
    base.update(fields)
    return SimCard(C.Card(**base))


def hk_mo_tw_card(**fields: str) -> SimCard:
    base = dict(
        card_type=C.HK_MO_TW, name="陈大文", id_number="810000199001010019", gender="1",
        birth_date="19900101", address="广东省深圳市福田区测试路2号", issuer="深圳市公安局福田分局",
        valid_from="20190101", valid_until="20240101", pass_number="H12345678", issue_count="01",
    )
    base.update(fields)
    return SimCard(C.Card(**base))


def foreign_2017_card(**fields: str) -> SimCard:
    base = dict(
        card_type=C.FOREIGN_2017, name="约翰", english_name="SAMPLE, JOHN",
        id_number="USA110079010101", gender="1", nationality="USA", valid_from="20170101",
        valid_until="20270101", birth_date="19790101", card_version="01", authority_code="1100",
    )
    base.update(fields)
    return SimCard(C.Card(**base))


def foreign_2023_card(**fields: str) -> SimCard:
    # The English name spills into the continuation field with a space exactly at the
    # split (character 35), which a decoder that trims each half would lose.
    base = dict(
        card_type=C.FOREIGN_2023, name="玛丽", english_name="SAMPLE, MARY ELIZABETH ANNE-MARIES CATHERINE",
        id_number="932682198501010017", gender="2", renewal_count="00", birth_date="19850101",
        issuer="国家移民管理局", valid_from="20230101", valid_until="20330101", nationality="GBR",
    )
    base.update(fields)
    return SimCard(C.Card(**base))


SAMPLE_CARDS: Dict[str, Callable[..., SimCard]] = {
    C.RESIDENT: resident_card,
    C.HK_MO_TW: hk_mo_tw_card,
    C.FOREIGN_2017: foreign_2017_card,
    C.FOREIGN_2023: foreign_2023_card,
}

# Which command an injected status hits when the caller does not say.
_DEFAULT_TARGET = {0x80: FIND_CARD.code, 0x81: SELECT_CARD.code, 0x60: SAM_STATUS.code}
_READ_CODES = (READ_BASE.code, READ_BASE_FP.code)

_BAUD_CONSTANTS = {getattr(termios, f"B{b}"): b for b in BAUD_BY_CODE.values()}


class SimulatedReader:
    """The SAM side of the protocol, served from a background thread.

    Behaviour knobs are plain attributes and may be changed at any time:
      noise       bytes sent before every reply
      delay       seconds to wait before answering
      chunk_size  write replies in pieces of this many bytes (None: one write)
      chunk_gap   seconds between those pieces
      pace        deliver bytes no faster than the wire at `baud` (10 bits a byte)
      rediscover  find answers 9F again for a card already selected and still present;
                  False models the common SAM that keeps it activated and answers 80
      sam_status  SW3 answered to 11 FF (0x60 = self-test failed)
      check_baud  ignore frames sent at a rate other than `baud`, as a UART would
    """

    def __init__(self, *, baud: int = 115200, pace: bool = False, rediscover: bool = False,
                 check_baud: bool = True, link_dir: Optional[str] = None) -> None:
        if baud not in BAUD_BY_CODE.values():
            raise ValueError(f"unsupported baud rate {baud}")
        self.baud = baud
        self.pace = pace
        self.rediscover = rediscover
        self.check_baud = check_baud
        self.noise = b""
        self.delay = 0.0
        self.chunk_size: Optional[int] = None
        self.chunk_gap = 0.0
        self.sam_status = SW3_OK
        self.counts: Dict[str, int] = collections.Counter()

        self._lock = threading.RLock()
        self._card: Optional[SimCard] = None
        self._found = False
        self._selected = False
        self._injected: Deque[Tuple[Tuple[int, int], int]] = collections.deque()
        self._parser = CommandParser()
        self._master: Optional[int] = None
        self._slave: Optional[int] = None
        self._port: Optional[str] = None
        self._own_dir = link_dir is None
        self._dir = link_dir or tempfile.mkdtemp(prefix="pingjia-idcard-")
        self.link = os.path.join(self._dir, "idcard")
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    # --- lifecycle -------------------------------------------------------------

    def start(self) -> "SimulatedReader":
        with self._lock:
            if self._thread is not None:
                return self
            self._plug()
            self._thread = threading.Thread(target=self._serve, name="idcard-sim", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None
        with self._lock:
            self._unplug()
        if self._own_dir:
            shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> "SimulatedReader":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def port(self) -> Optional[str]:
        """The current pty slave path (changes on replug; prefer .link)."""
        return self._port

    @property
    def plugged(self) -> bool:
        return self._master is not None

    def unplug(self) -> None:
        """Vanish like a pulled USB cable: the driver's I/O fails, the link disappears."""
        with self._lock:
            self._unplug()

    def replug(self) -> None:
        """Come back on a new pty; the link is re-pointed to it."""
        with self._lock:
            if self._master is None:
                self._plug()

    def _plug(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        # Non-blocking so a reply to a driver that stopped reading cannot wedge the
        # thread, and unplug() is never kept waiting.
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self._port = os.ttyname(slave)
        self._parser.reset()
        # Replace the link atomically so the driver never sees a half-made name.
        tmp = self.link + ".new"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(self._port, tmp)
        os.replace(tmp, self.link)

    def _unplug(self) -> None:
        if os.path.lexists(self.link):
            os.unlink(self.link)
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = None
        self._found = self._selected = False

    # --- card and error control -------------------------------------------------

    def place(self, card: Union[SimCard, C.Card, None] = None) -> None:
        """Put a card on the reader (default: the resident sample card)."""
        if card is None:
            card = resident_card()
        elif isinstance(card, C.Card):
            card = SimCard(card)
        with self._lock:
            self._card = card
            self._found = self._selected = False

    def remove(self) -> None:
        with self._lock:
            self._card = None
            self._found = self._selected = False

    @property
    def card_present(self) -> bool:
        return self._card is not None

    def inject(self, sw3: int, command: Optional[Tuple[int, int]] = None) -> None:
        """Answer `sw3` to the next `command` (default: find for 80, select for 81,
        SAM status for 60, the next card read for anything else, e.g. 41)."""
        target = command or _DEFAULT_TARGET.get(sw3, READ_BASE.code)
        with self._lock:
            self._injected.append((target, sw3))

    # --- serving ----------------------------------------------------------------

    def _serve(self) -> None:
        while not self._stop.is_set():
            fd = self._master
            if fd is None:
                self._stop.wait(0.02)
                continue
            try:
                ready, _, _ = select.select([fd], [], [], 0.05)
                if not ready:
                    continue
                with self._lock:
                    if fd != self._master:
                        continue
                    data = os.read(fd, 4096)
                    baud_ok = self._rate_matches(fd)
            except (OSError, ValueError, termios.error):
                # The master was closed under us (unplug) or the slave hung up.
                self._stop.wait(0.02)
                continue
            if not baud_ok:
                # A UART at the wrong rate sees framing garbage and never a valid frame.
                self._parser.reset()
                self._send(fd, b"\xF0\x0F\xFF")
                continue
            if self.pace:
                time.sleep(wire_seconds(len(data), self.baud))
            for item in self._parser.feed(data):
                reply, after = self._answer(item)
                self._send(fd, reply)
                if after:
                    after()

    def _rate_matches(self, fd: int) -> bool:
        if not self.check_baud:
            return True
        # On Linux, termios calls on a pty master act on the slave side, so this is
        # the rate the driver configured.
        speed = termios.tcgetattr(fd)[5]
        return _BAUD_CONSTANTS.get(speed) == self.baud

    def _answer(self, item: Union[RawCommand, Defect]) -> Tuple[bytes, Optional[Callable[[], None]]]:
        if item is Defect.BAD_CHECKSUM:
            self.counts["bad_checksum"] += 1
            return build_response(0x10), None
        if item is Defect.BAD_LENGTH:
            self.counts["bad_length"] += 1
            return build_response(0x11), None
        assert isinstance(item, RawCommand)
        code = (item.cmd, item.para)
        with self._lock:
            self.counts[_COUNT_NAMES.get(code, f"{item.cmd:02X} {item.para:02X}")] += 1
            if code not in _COUNT_NAMES and code != SET_MAX_RF_BYTES:
                return build_response(0x21), None
            expected_data = 1 if code == SET_MAX_RF_BYTES else 0
            if len(item.data) != expected_data:
                return build_response(0x11), None
            injected = self._take_injection(code)
            if injected is not None:
                return build_response(injected), None
            if item.cmd == BAUD_COMMAND and item.para in BAUD_BY_CODE:
                # Acknowledged at the old rate, then the UART switches (§8.2-4).
                new = BAUD_BY_CODE[item.para]
                return build_response(SW3_OK), lambda: setattr(self, "baud", new)
            return self._dispatch(code), None

    def _take_injection(self, code: Tuple[int, int]) -> Optional[int]:
        for i, (target, sw3) in enumerate(self._injected):
            if target == code:
                del self._injected[i]
                return sw3
        return None

    def _dispatch(self, code: Tuple[int, int]) -> bytes:
        card = self._card
        if code == RESET_SAM.code:
            self._found = self._selected = False
            return build_response(SW3_OK)
        if code == SAM_STATUS.code:
            return build_response(self.sam_status)
        if code == SAM_ID.code:
            return build_response(SW3_OK, SAMPLE_SAM_ID)
        if code == SET_MAX_RF_BYTES:
            return build_response(SW3_OK)
        if code == FIND_CARD.code:
            if card is None or (self._selected and not self.rediscover):
                return build_response(0x80)
            self._found = True
            return build_response(SW3_FOUND, bytes(4))
        if code == SELECT_CARD.code:
            if card is None or not (self._found or self._selected):
                return build_response(0x81)
            self._selected = True
            return build_response(SW3_OK, bytes(8))
        if code in _READ_CODES or code == READ_ADDRESS.code:
            if card is None or not self._selected:
                return build_response(0x41)
            return self._read(card, code)
        return build_response(0x21)

    @staticmethod
    def _read(card: SimCard, code: Tuple[int, int]) -> bytes:
        if code == READ_ADDRESS.code:
            if card.additional_address is None:
                return build_response(SW3_NO_CONTENT)
            text = card.additional_address.ljust(ADDRESS_LEN // 2).encode("utf-16-le")
            return build_response(SW3_OK, text[:ADDRESS_LEN])
        fingerprints = card.fingerprints if code == READ_BASE_FP.code else None
        payload = C.build_read_payload(C.encode_text_block(card.card), card.photo, fingerprints)
        return build_response(SW3_OK, payload)

    def _send(self, fd: int, reply: bytes) -> None:
        if self.delay:
            time.sleep(self.delay)
        data = self.noise + reply
        size = self.chunk_size or (32 if self.pace else len(data))
        start, sent = time.monotonic(), 0
        for i in range(0, len(data), size):
            chunk = data[i:i + size]
            if self.pace:
                # Release each piece only once it would have fully crossed the wire.
                due = start + wire_seconds(sent + len(chunk), self.baud) - time.monotonic()
                if due > 0:
                    time.sleep(due)
            if not self._write_all(fd, chunk):
                return
            sent += len(chunk)
            if self.chunk_gap and i + size < len(data):
                time.sleep(self.chunk_gap)

    def _write_all(self, fd: int, data: bytes) -> bool:
        deadline = time.monotonic() + 2.0
        while data:
            if fd != self._master or self._stop.is_set():
                return False
            try:
                n = os.write(fd, data)
                data = data[n:]
            except BlockingIOError:
                # The driver is not reading; give it a moment, then drop the reply.
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.005)
            except OSError as exc:
                if exc.errno not in (errno.EIO, errno.EBADF):
                    log.warning("simulated reader write failed: %s", exc)
                return False
        return True


_COUNT_NAMES = {
    RESET_SAM.code: "reset", SAM_STATUS.code: "status", SAM_ID.code: "sam_id",
    FIND_CARD.code: "find", SELECT_CARD.code: "select", READ_BASE.code: "read",
    READ_BASE_FP.code: "read_fp", READ_ADDRESS.code: "address",
    **{(BAUD_COMMAND, code): "baud" for code in BAUD_BY_CODE},
}

_HELP = """commands:
  p [resident|hk_mo_tw|foreign_2017|foreign_2023]   place a card
  r                                               remove the card
  e SW3 (hex, e.g. 41)                            answer SW3 to the next matching command
  u / g                                           unplug / replug
  q                                               quit"""


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m drivers.idcard.simulated",
                                     description="Run a simulated ID-card reader on a pseudo-terminal.")
    parser.add_argument("--baud", type=int, default=115200, choices=sorted(BAUD_BY_CODE.values()))
    parser.add_argument("--card", choices=sorted(SAMPLE_CARDS), help="place this sample card at start")
    parser.add_argument("--pace", action="store_true", help="deliver bytes at the wire rate")
    parser.add_argument("--rediscover", action="store_true", help="find sees a selected card again")
    args = parser.parse_args(argv)
    with SimulatedReader(baud=args.baud, pace=args.pace, rediscover=args.rediscover) as sim:
        if args.card:
            sim.place(SAMPLE_CARDS[args.card]())
        print(f"port: {sim.link} (-> {sim.port}), {args.baud} baud", flush=True)
        print(_HELP, flush=True)
        for line in sys.stdin:
            words = line.split()
            if not words:
                continue
            op, rest = words[0], words[1:]
            try:
                if op == "q":
                    break
                if op == "p":
                    sim.place(SAMPLE_CARDS[rest[0] if rest else C.RESIDENT]())
                elif op == "r":
                    sim.remove()
                elif op == "e":
                    sim.inject(int(rest[0], 16))
                elif op == "u":
                    sim.unplug()
                elif op == "g":
                    sim.replug()
                    print(f"port: {sim.link} (-> {sim.port})", flush=True)
                else:
                    print(_HELP, flush=True)
            except (KeyError, IndexError, ValueError) as exc:
                print(f"? {exc}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
