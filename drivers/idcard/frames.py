"""Frame codec for the ID-card reader's SAM serial protocol (pure, no I/O).

Frame layout (docs/idcard-protocol.md §2; every § below is a section of that page):

    AA AA AA 96 69 | LenH LenL | payload ... | CHK

Len is big-endian and counts the payload plus the checksum byte; CHK is the XOR of
Len and payload. A command's payload is CMD PARA [data], a response's is
SW1 SW2 SW3 [data]. Decisions are taken on SW3 only (§2.2, §8.2-8).
"""
from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from functools import reduce
from typing import Container, Dict, List, Optional, Tuple, Type, Union

PREAMBLE = b"\xAA\xAA\xAA\x96\x69"
HEADER_LEN = len(PREAMBLE) + 2

# Len of the largest response on record is 0x090A (30 10 with two fingerprint
# templates). Anything above this bound is treated as noise: accepting it would let a
# stray preamble stall the parser waiting for bytes that never come.
MAX_RESPONSE_LEN = 0x0A00
# Every known command is at most CMD PARA + 1 data byte; the bound only needs to be
# larger than that and small enough that a garbled Len is caught quickly.
MAX_COMMAND_LEN = 0x40
MIN_RESPONSE_LEN = 4  # SW1 SW2 SW3 CHK
MIN_COMMAND_LEN = 3  # CMD PARA CHK

# Success codes (§4).
SW3_OK = 0x90
SW3_NO_CONTENT = 0x91
SW3_FOUND = 0x9F


def checksum(data: bytes) -> int:
    """XOR of all bytes (the caller passes Len..last payload byte)."""
    return reduce(lambda acc, b: acc ^ b, data, 0)


def build_frame(payload: bytes) -> bytes:
    """Wrap a payload (CMD PARA data, or SW1 SW2 SW3 data) into a complete frame."""
    body = struct.pack(">H", len(payload) + 1) + bytes(payload)
    return PREAMBLE + body + bytes([checksum(body)])


@dataclass(frozen=True)
class Command:
    cmd: int
    para: int
    data: bytes = b""

    def frame(self) -> bytes:
        return build_frame(bytes([self.cmd, self.para]) + self.data)

    @property
    def code(self) -> Tuple[int, int]:
        return (self.cmd, self.para)

    def __str__(self) -> str:
        return COMMAND_NAMES.get(self.code, f"{self.cmd:02X} {self.para:02X}")


def build_command(cmd: int, para: int, data: bytes = b"") -> bytes:
    return Command(cmd, para, data).frame()


def build_response(sw3: int, data: bytes = b"", sw1: int = 0, sw2: int = 0) -> bytes:
    return build_frame(bytes([sw1, sw2, sw3]) + data)


RESET_SAM = Command(0x10, 0xFF)
SAM_STATUS = Command(0x11, 0xFF)
SAM_ID = Command(0x12, 0xFF)
FIND_CARD = Command(0x20, 0x01)
SELECT_CARD = Command(0x20, 0x02)
READ_BASE = Command(0x30, 0x01)
READ_ADDRESS = Command(0x30, 0x03)
READ_BASE_FP = Command(0x30, 0x10)

COMMAND_NAMES: Dict[Tuple[int, int], str] = {
    RESET_SAM.code: "reset SAM",
    SAM_STATUS.code: "SAM status",
    SAM_ID.code: "SAM id",
    FIND_CARD.code: "find card",
    SELECT_CARD.code: "select card",
    READ_BASE.code: "read card",
    READ_ADDRESS.code: "read additional address",
    READ_BASE_FP.code: "read card with fingerprint",
}

# 60 xx: the PARA byte selects the UART rate (§3).
BAUD_CODES: Dict[int, int] = {115200: 0x00, 57600: 0x01, 38400: 0x02, 19200: 0x03, 9600: 0x04}
BAUD_BY_CODE: Dict[int, int] = {code: baud for baud, code in BAUD_CODES.items()}
BAUD_COMMAND = 0x60
for _baud, _code in BAUD_CODES.items():
    COMMAND_NAMES[(BAUD_COMMAND, _code)] = f"set baud {_baud}"


def set_baud_command(baud: int) -> Command:
    if baud not in BAUD_CODES:
        raise ValueError(f"unsupported baud rate {baud}; choose one of {sorted(BAUD_CODES, reverse=True)}")
    return Command(BAUD_COMMAND, BAUD_CODES[baud])


def wire_seconds(n_bytes: int, baud: int) -> float:
    """Time n bytes take on an 8N1 line (10 bits per byte)."""
    return n_bytes * 10 / baud


@dataclass(frozen=True)
class Response:
    sw1: int
    sw2: int
    sw3: int
    data: bytes = b""

    def __repr__(self) -> str:
        # Data may be a card's text block: show its size, never its content.
        return f"Response(sw1=0x{self.sw1:02X}, sw2=0x{self.sw2:02X}, sw3=0x{self.sw3:02X}, data=<{len(self.data)} bytes>)"


@dataclass(frozen=True)
class RawCommand:
    """A command as received by the SAM side (the simulator)."""

    cmd: int
    para: int
    data: bytes = b""


class Defect(enum.Enum):
    """Why a candidate frame was dropped."""

    BAD_CHECKSUM = "bad_checksum"
    BAD_LENGTH = "bad_length"


@dataclass
class ParserStats:
    frames: int = 0
    bad_checksum: int = 0
    bad_length: int = 0
    noise_bytes: int = 0
    truncated: int = 0  # incomplete frames given up on by abandon()


class _Scanner:
    """Finds frames in a byte stream; shared by the host and the SAM side."""

    # Input is consumed in slices so the buffer never holds more than one maximal
    # frame plus one slice, however much a caller feeds at once.
    _SLICE = 4096

    def __init__(self, min_len: int, max_len: int) -> None:
        self._min_len = min_len
        self._max_len = max_len
        self._buf = bytearray()
        self.stats = ParserStats()

    @property
    def pending(self) -> int:
        return len(self._buf)

    def reset(self) -> None:
        """Drop buffered bytes (stats are kept)."""
        self._buf.clear()

    def _feed(self, data: bytes) -> List[Union[bytes, Defect]]:
        out: List[Union[bytes, Defect]] = []
        view = memoryview(bytes(data))
        for start in range(0, len(view), self._SLICE):
            self._buf += view[start:start + self._SLICE]
            self._scan(out)
        return out

    def _abandon(self) -> List[Union[bytes, Defect]]:
        # Drop incomplete candidates one by one until a frame turns up behind one or
        # none is left; each pass shortens the buffer, so this ends.
        out: List[Union[bytes, Defect]] = []
        while self._buf.startswith(PREAMBLE) and not any(isinstance(p, bytes) for p in out):
            self.stats.truncated += 1
            del self._buf[: len(PREAMBLE)]
            self._scan(out)
        return out

    def _scan(self, out: List[Union[bytes, Defect]]) -> None:
        buf = self._buf
        while True:
            start = buf.find(PREAMBLE)
            if start < 0:
                keep = _partial_preamble_suffix(buf)
                self.stats.noise_bytes += len(buf) - keep
                del buf[: len(buf) - keep]
                return
            if start:
                self.stats.noise_bytes += start
                del buf[:start]
            if len(buf) < HEADER_LEN:
                return
            length = (buf[5] << 8) | buf[6]
            if not self._min_len <= length <= self._max_len:
                # Skip only the preamble: a real frame may start inside what we
                # took for this one.
                self.stats.bad_length += 1
                out.append(Defect.BAD_LENGTH)
                del buf[: len(PREAMBLE)]
                continue
            total = HEADER_LEN + length
            if len(buf) < total:
                return
            if checksum(buf[5:total - 1]) != buf[total - 1]:
                self.stats.bad_checksum += 1
                out.append(Defect.BAD_CHECKSUM)
                del buf[: len(PREAMBLE)]
                continue
            self.stats.frames += 1
            out.append(bytes(buf[HEADER_LEN:total - 1]))
            del buf[:total]


def _partial_preamble_suffix(buf: bytearray) -> int:
    """Length of the longest tail of buf that could be the start of a preamble."""
    for n in range(min(len(PREAMBLE) - 1, len(buf)), 0, -1):
        if buf.endswith(PREAMBLE[:n]):
            return n
    return 0


class FrameParser(_Scanner):
    """Incremental response parser for the host side.

    feed() accepts chunks of any size and returns the responses completed by them.
    Noise, frames with a wrong checksum and impossible lengths are skipped and counted
    in .stats; no input makes it raise, and its buffer stays bounded.
    """

    def __init__(self, max_len: int = MAX_RESPONSE_LEN) -> None:
        super().__init__(MIN_RESPONSE_LEN, max_len)

    def feed(self, data: bytes) -> List[Response]:
        return [_response(p) for p in self._feed(data) if isinstance(p, bytes)]

    def abandon(self) -> List[Response]:
        """Give up on an incomplete frame at the head of the buffer.

        A stray preamble followed by a plausible Len makes the parser wait for bytes
        that belong to the real answer; on a timeout the driver calls this to rescan
        what arrived after that false start.
        """
        return [_response(p) for p in self._abandon() if isinstance(p, bytes)]


class CommandParser(_Scanner):
    """Incremental command parser for the SAM side (the simulator).

    Unlike FrameParser it reports defects, because the SAM answers them (SW3 10/11).
    """

    def __init__(self, max_len: int = MAX_COMMAND_LEN) -> None:
        super().__init__(MIN_COMMAND_LEN, max_len)

    def feed(self, data: bytes) -> List[Union[RawCommand, Defect]]:
        return [
            RawCommand(p[0], p[1], bytes(p[2:])) if isinstance(p, bytes) else p
            for p in self._feed(data)
        ]


def _response(payload: bytes) -> Response:
    return Response(payload[0], payload[1], payload[2], payload[3:])


def parse_sam_id(data: bytes) -> str:
    """Format the 16-byte 12 FF payload the way vendor tools print it (§3.1)."""
    if len(data) != 16:
        raise ValueError(f"SAM id payload must be 16 bytes, got {len(data)}")
    a, b, c, d, e = struct.unpack("<HHIII", data)
    return f"{a:02d}.{b:02d}-{c:08d}-{d:010d}-{e:010d}"


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


class IdCardError(Exception):
    """Base of every error raised by drivers.idcard."""


class ReaderIOError(IdCardError):
    """The reader could not be talked to (port missing, unplugged, silent)."""


class PortError(ReaderIOError):
    """The serial port could not be opened; the message says what to fix."""


class ReaderDisconnected(ReaderIOError):
    """Reads or writes on an open port failed: the device went away."""


class ReaderTimeout(ReaderIOError):
    """No complete answer within the command's timeout."""


class StatusError(IdCardError):
    """The SAM answered with a failure status (SW3)."""

    kind = "status"
    default_message = "reader reported an error"

    def __init__(self, sw3: int, message: Optional[str] = None, command: Optional[Command] = None) -> None:
        self.sw3 = sw3
        self.command = command
        self.message = message or self.default_message
        where = f" ({command})" if command is not None else ""
        super().__init__(f"{self.message} [SW3 0x{sw3:02X}]{where}")


class HostFrameError(StatusError):
    """The SAM rejected our frame: a bug or line noise on our side."""

    kind = "protocol"


class SamFault(StatusError):
    """The security module itself cannot work; a technician is needed."""

    kind = "sam_fault"


class NoCard(StatusError):
    kind = "no_card"
    default_message = "no card on the reader"


class NoContent(StatusError):
    kind = "no_content"
    default_message = "the card has no content for this item"


class CardFault(StatusError):
    """A card-side failure; the remedy is to lift the card and place it again."""

    kind = "card_error"
    default_message = "the card could not be read, lift it and place it again"


class SelectFailed(CardFault):
    kind = "select_failed"


class ReadFailed(CardFault):
    kind = "read_failed"


class CardAuthFailed(CardFault):
    kind = "auth_failed"


class UnsupportedCard(CardFault):
    kind = "unsupported_card"


REPLACE_HINT = "lift the card and place it again"

# SW3 → (exception class, message). Meanings from docs/idcard-protocol.md §4.
STATUS_TABLE: Dict[int, Tuple[Type[StatusError], str]] = {
    0x10: (HostFrameError, "reader received a frame with a bad checksum"),
    0x11: (HostFrameError, "reader received a frame with a bad length"),
    0x21: (HostFrameError, "reader rejected the command (bad code or illegal sequence)"),
    0x23: (SamFault, "operation not authorised by the security module"),
    0x24: (SamFault, "security module reported an unrecognised error"),
    0x31: (CardAuthFailed, f"card failed to authenticate the reader, {REPLACE_HINT}"),
    0x32: (CardAuthFailed, f"reader failed to authenticate the card, {REPLACE_HINT}"),
    0x33: (CardAuthFailed, f"card data failed verification, {REPLACE_HINT}"),
    0x37: (CardAuthFailed, f"fingerprint data failed verification, {REPLACE_HINT}"),
    0x3F: (ReadFailed, f"card data had a wrong length, {REPLACE_HINT}"),
    0x40: (UnsupportedCard, "this card type is not supported by the reader"),
    0x41: (ReadFailed, f"card moved during the read, {REPLACE_HINT}"),
    0x47: (CardAuthFailed, f"card did not answer the challenge, {REPLACE_HINT}"),
    0x60: (SamFault, "security module self-test failed, the reader needs service"),
    0x66: (SamFault, "security module is not authorised, the reader needs service"),
    0x80: (NoCard, "no card on the reader"),
    0x81: (SelectFailed, f"card could not be selected, {REPLACE_HINT}"),
    0x91: (NoContent, "the card has no content for this item"),
}


def status_error(sw3: int, command: Optional[Command] = None) -> StatusError:
    cls, message = STATUS_TABLE.get(sw3, (StatusError, "reader reported an unknown status"))
    return cls(sw3, message, command)


# Success SW3 values and the payload sizes each command can answer with (None: any).
# The driver uses this to drop a late answer to an earlier, timed-out command. Find
# and select may come without their IIN / SN bytes on some readers.
_ANY_READ = range(4, 0x10000)
_EXPECTED: Dict[Tuple[int, int], Tuple[Tuple[int, ...], Optional[Container[int]]]] = {
    RESET_SAM.code: ((SW3_OK,), (0,)),
    SAM_STATUS.code: ((SW3_OK,), (0,)),
    SAM_ID.code: ((SW3_OK,), (16,)),
    FIND_CARD.code: ((SW3_FOUND,), (0, 4)),
    SELECT_CARD.code: ((SW3_OK,), (0, 8)),
    READ_BASE.code: ((SW3_OK,), _ANY_READ),
    READ_BASE_FP.code: ((SW3_OK,), _ANY_READ),
    READ_ADDRESS.code: ((SW3_OK, SW3_NO_CONTENT), None),
}
_SUCCESS_CODES = (SW3_OK, SW3_NO_CONTENT, SW3_FOUND)


def is_success(command: Command, response: Response) -> bool:
    ok, _ = _expected(command)
    return response.sw3 in ok


def answers(command: Command, response: Response) -> bool:
    """Whether the response can be the answer to this command.

    Failure codes carry no data and are accepted for any command; a success code must
    be the one this command gives, with a payload size it gives.
    """
    if response.sw3 not in _SUCCESS_CODES:
        return True
    ok, sizes = _expected(command)
    if response.sw3 not in ok:
        return False
    return response.sw3 == SW3_NO_CONTENT or sizes is None or len(response.data) in sizes


def _expected(command: Command) -> Tuple[Tuple[int, ...], Optional[Container[int]]]:
    if command.cmd == BAUD_COMMAND:
        return ((SW3_OK,), (0,))
    return _EXPECTED.get(command.code, ((SW3_OK,), None))


def check(command: Command, response: Response) -> Response:
    """Return the response if it reports success for this command, else raise."""
    if is_success(command, response):
        return response
    raise status_error(response.sw3, command)
