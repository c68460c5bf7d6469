"""Card data: the 256-byte text block, card types, ID check digit and masking.

Layouts from docs/idcard-protocol.md §5 (every § below is a section of that page). The
photo and fingerprint parts of a read are skipped here and never stored: the device keeps
no personal data beyond what the current lookup needs (docs/idcard-protocol.md §9).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

from config.text import text_problem

from .frames import IdCardError

TEXT_LEN = 256
PHOTO_LEN = 1024
FLAG_OFFSET = 248

RESIDENT = "resident"
HK_MO_TW = "hk_mo_tw"  # 'J' 港澳台居民居住证
FOREIGN_2017 = "foreign_2017"  # 'I' 外国人永久居留身份证, 2017 version
FOREIGN_2023 = "foreign_2023"  # 'Y' 外国人永久居留身份证, 2023 version

CARD_TYPE_FLAGS: Dict[str, str] = {"J": HK_MO_TW, "I": FOREIGN_2017, "Y": FOREIGN_2023}
FLAG_BY_CARD_TYPE: Dict[str, str] = {v: k for k, v in CARD_TYPE_FLAGS.items()}

CARD_TYPE_LABELS: Dict[str, str] = {
    RESIDENT: "居民身份证",
    HK_MO_TW: "港澳台居民居住证",
    FOREIGN_2017: "外国人永久居留身份证(2017)",
    FOREIGN_2023: "外国人永久居留身份证(2023)",
}

# Certificate type codes for the central lookup (POST /v1/lookup, agent/central-openapi.json).
# "111" = 居民身份证 is used by every 好差评 interface on record (docs/profiles.md).
# The others are NOT confirmed by any source we hold:
# - "553" is 外国人永久居留证 in the GA/T 2000.156 style certificate code list as we
#   remember it; we assume both card versions share it. Medium confidence.
# - 港澳台居民居住证 (2018) has no code we could confirm; "990" (其他证件) is the honest
#   fallback. Its number follows GB 11643, so a province may want "111" instead: map it
#   in the agent's province profile rather than here.
CERT_TYPES: Dict[str, str] = {
    RESIDENT: "111",
    HK_MO_TW: "990",
    FOREIGN_2017: "553",
    FOREIGN_2023: "553",
}


class CardFormatError(IdCardError):
    """The read payload or text block does not have the expected shape."""

    kind = "bad_data"


# (field, byte offset, byte length) per card type. "_english_name_2" is the 2023 card's
# continuation of the English name, joined before trimming.
_Layout = Sequence[Tuple[str, int, int]]
_LAYOUTS: Dict[str, _Layout] = {
    RESIDENT: (
        ("name", 0, 30), ("gender", 30, 2), ("nation", 32, 4), ("birth_date", 36, 16),
        ("address", 52, 70), ("id_number", 122, 36), ("issuer", 158, 30),
        ("valid_from", 188, 16), ("valid_until", 204, 16),
    ),
    HK_MO_TW: (
        ("name", 0, 30), ("gender", 30, 2), ("birth_date", 36, 16), ("address", 52, 70),
        ("id_number", 122, 36), ("issuer", 158, 30), ("valid_from", 188, 16),
        ("valid_until", 204, 16), ("pass_number", 220, 18), ("issue_count", 238, 4),
    ),
    FOREIGN_2017: (
        ("english_name", 0, 120), ("gender", 120, 2), ("id_number", 122, 30),
        ("nationality", 152, 6), ("name", 158, 30), ("valid_from", 188, 16),
        ("valid_until", 204, 16), ("birth_date", 220, 16), ("card_version", 236, 4),
        ("authority_code", 240, 8),
    ),
    FOREIGN_2023: (
        ("name", 0, 30), ("gender", 30, 2), ("renewal_count", 32, 4), ("birth_date", 36, 16),
        ("english_name", 52, 70), ("id_number", 122, 36), ("issuer", 158, 30),
        ("valid_from", 188, 16), ("valid_until", 204, 16), ("_english_name_2", 220, 22),
        ("nationality", 242, 6), ("previous_number_link", 250, 6),
    ),
}

_PAD = " \x00"
# The fields the device uses (screen, lookup); the message of a refusal names only the
# field and the character, never the text.
_CHECKED = ("name", "english_name", "id_number")


@dataclass(frozen=True, repr=False)
class Card:
    """One card's text data. repr() and str() show masked values only."""

    card_type: str
    name: str
    id_number: str
    gender: str = ""  # GB/T 2261.1: "1" male, "2" female
    birth_date: str = ""  # YYYYMMDD
    address: str = ""
    issuer: str = ""
    valid_from: str = ""
    valid_until: str = ""  # YYYYMMDD or 长期
    nation: str = ""  # GB 3304 two-digit code, resident cards only
    english_name: str = ""
    nationality: str = ""
    pass_number: str = ""
    issue_count: str = ""
    renewal_count: str = ""
    card_version: str = ""
    authority_code: str = ""
    previous_number_link: str = ""

    @property
    def display_name(self) -> str:
        """The name to show: the Chinese name, else the English one (foreign cards)."""
        return self.name or self.english_name

    @property
    def cert_type(self) -> str:
        return CERT_TYPES[self.card_type]

    @property
    def id_check_ok(self) -> Optional[bool]:
        """GB 11643 check of the number; None where the card's number has no check digit."""
        if self.card_type == FOREIGN_2017:
            return None
        return is_valid_id_number(self.id_number)

    def masked(self) -> Dict[str, str]:
        return {
            "card_type": self.card_type,
            "name": mask_name(self.display_name),
            "id": mask_id(self.id_number),
        }

    def __repr__(self) -> str:
        m = self.masked()
        return f"Card(card_type={m['card_type']!r}, name={m['name']!r}, id={m['id']!r})"

    def __str__(self) -> str:
        m = self.masked()
        return f"{m['card_type']} card {m['name']} {m['id']}"


def card_type_of(text: bytes) -> str:
    flag = text[FLAG_OFFSET:FLAG_OFFSET + 2].decode("utf-16-le", errors="replace")
    if flag in (" ", "\x00"):
        return RESIDENT
    if flag in CARD_TYPE_FLAGS:
        return CARD_TYPE_FLAGS[flag]
    raise CardFormatError(f"unknown card type flag U+{ord(flag):04X} at text offset {FLAG_OFFSET}")


def parse_text_block(text: bytes) -> Card:
    if len(text) < TEXT_LEN:
        raise CardFormatError(f"text block is {len(text)} bytes, expected {TEXT_LEN}")
    card_type = card_type_of(text)
    # UCS-2 is a subset of UTF-16; "replace" keeps a damaged character from
    # aborting the read (the checksum already vouches for the bytes).
    raw = {f: text[o:o + n].decode("utf-16-le", errors="replace") for f, o, n in _LAYOUTS[card_type]}
    if "_english_name_2" in raw:
        raw["english_name"] += raw.pop("_english_name_2")
    fields = {k: v.strip(_PAD) for k, v in raw.items()}
    for name in _CHECKED:
        why = text_problem(fields.get(name, ""))
        if why:  # no real card holds these: the bytes were damaged on the way
            raise CardFormatError(f"the card's {name} {why}")
    return Card(card_type=card_type, **fields)


def encode_text_block(card: Card) -> bytes:
    """Inverse of parse_text_block (used by the simulator and tests)."""
    text = bytearray(" ".encode("utf-16-le") * (TEXT_LEN // 2))
    values = {f: getattr(card, f, "") for f, _, _ in _LAYOUTS[card.card_type]}
    if card.card_type == FOREIGN_2023:
        values["english_name"], values["_english_name_2"] = card.english_name[:35], card.english_name[35:]
    for f, offset, size in _LAYOUTS[card.card_type]:
        encoded = values[f].encode("utf-16-le")
        if len(encoded) > size:
            raise ValueError(f"{f} is longer than its {size // 2} characters")
        text[offset:offset + len(encoded)] = encoded
    flag = FLAG_BY_CARD_TYPE.get(card.card_type)
    if flag:
        text[FLAG_OFFSET:FLAG_OFFSET + 2] = flag.encode("utf-16-le")
    return bytes(text)


def split_read_payload(data: bytes, with_fingerprint: bool = False) -> Tuple[bytes, int]:
    """Return (text block, fingerprint length) from a 30 01 / 30 10 payload.

    The length words are honoured rather than assuming 256/1024 (§5.1). The photo and
    fingerprint bytes are not returned.
    """
    n_words = 3 if with_fingerprint else 2
    header = 2 * n_words
    if len(data) < header:
        raise CardFormatError(f"read payload of {len(data)} bytes has no length header")
    lengths = struct.unpack(f">{n_words}H", data[:header])
    text_len, photo_len = lengths[0], lengths[1]
    fp_len = lengths[2] if with_fingerprint else 0
    if header + text_len + photo_len + fp_len != len(data):
        raise CardFormatError(
            f"read payload is {len(data)} bytes but its length words say "
            f"{header}+{text_len}+{photo_len}+{fp_len}"
        )
    if text_len < TEXT_LEN:
        raise CardFormatError(f"text block is {text_len} bytes, expected {TEXT_LEN}")
    return data[header:header + text_len], fp_len


def decode_read_payload(data: bytes, with_fingerprint: bool = False) -> Card:
    text, _ = split_read_payload(data, with_fingerprint)
    return parse_text_block(text)


def build_read_payload(text: bytes, photo: bytes = bytes(PHOTO_LEN),
                       fingerprints: Optional[bytes] = None) -> bytes:
    """Payload of a 30 01 answer, or of 30 10 when fingerprints is given (b"" = none)."""
    if fingerprints is None:
        return struct.pack(">HH", len(text), len(photo)) + text + photo
    return struct.pack(">HHH", len(text), len(photo), len(fingerprints)) + text + photo + fingerprints


# --- ID number (GB 11643-1999, ISO 7064 MOD 11-2; §6) -----------------------------

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_CHARS = "10X98765432"


def id_check_char(first17: str) -> str:
    if len(first17) != 17 or not first17.isascii() or not first17.isdigit():
        raise ValueError("the check character is computed from exactly 17 digits")
    return _CHECK_CHARS[sum(int(d) * w for d, w in zip(first17, _WEIGHTS)) % 11]


def is_valid_id_number(number: str) -> bool:
    """Structure and check character of an 18-character number (resident, J and Y cards)."""
    if len(number) != 18 or not number[:17].isascii() or not number[:17].isdigit():
        return False
    return id_check_char(number[:17]) == number[17].upper()


# --- Masking (§9: show 张*三, 1101**********1234) ----------------------------------


def mask_name(name: str) -> str:
    """Keep the first and last character; a two-character name keeps only the first."""
    n = len(name)
    if n <= 1:
        return "*" * n
    if n == 2:
        return name[0] + "*"
    return name[0] + "*" * (n - 2) + name[-1]


def mask_id(number: str) -> str:
    """Keep the first 4 and last 4 characters; anything too short is fully starred."""
    n = len(number)
    if n <= 8:
        return "*" * n
    return number[:4] + "*" * (n - 8) + number[-4:]
