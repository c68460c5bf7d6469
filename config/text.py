"""The one check for text that reaches the device from outside.

Every string from a caller, a settings file, the central system's pulled config, a
lookup answer or an ID card passes `text_problem` before the device keeps it. A record
is UTF-8 JSON (its canonical form, terminal/records.py), so a lone surrogate cannot be
encoded at all, and control characters or noncharacters in a name would reach the
display, the record and the centre as noise. Refusing them at the door, once, is what
keeps "accepted" and "storable" the same thing.

This module sits at the bottom with the settings and imports nothing of the project.
"""
from __future__ import annotations

import re
from typing import Any, Iterator

# C0 and C1 controls and DEL; lone surrogates; the 66 Unicode noncharacters
# (U+FDD0..U+FDEF and the last two code points of every plane).
_BAD = re.compile(
    "[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef"
    + "".join(f"{chr(p * 0x10000 + 0xFFFE)}{chr(p * 0x10000 + 0xFFFF)}" for p in range(17))
    + "]"
)
# Multi-line fields (the pause message, texts on the screen) may hold line breaks.
_BAD_MULTILINE = re.compile(_BAD.pattern.replace("\x00-\x1f", "\x00-\x09\x0b-\x1f"))


def text_problem(value: str, multiline: bool = False) -> str | None:
    """Why `value` cannot be kept, in words for an error message; None when it can."""
    m = (_BAD_MULTILINE if multiline else _BAD).search(value)
    if m is None:
        return None
    c = m.group()
    code = ord(c)
    if 0xD800 <= code <= 0xDFFF:
        kind = "a lone surrogate"
    elif code < 0x20 or 0x7F <= code <= 0x9F:
        kind = "a control character"
    else:
        kind = "a Unicode noncharacter"
    return f"contains {kind} (U+{code:04X}) at position {m.start()}"


def first_text_problem(value: Any, where: str = "", multiline: bool = False) -> tuple[str, str] | None:
    """(field, why) of the first bad string anywhere in a JSON-like value, keys included."""
    if _clean(value, multiline):
        return None  # the common case, without the paths the report below builds
    for path, why in _walk(value, where, multiline):
        return path, why
    return None


def _clean(value: Any, multiline: bool) -> bool:
    """True when no string in `value` (keys included) has a bad character: `_walk`'s
    verdict without its paths, for the receiver's every record (make bench: receiver).
    The strings are judged joined by spaces, the keys at once and the values at once: a
    space is no bad character, and no bad character spans two strings."""
    keys: list = []
    values: list = []
    _collect(value, keys, values)
    return _good(" ".join(keys), _BAD) and _good(" ".join(values), _BAD_MULTILINE if multiline else _BAD)


def _good(text: str, bad) -> bool:
    # Every bad character is a control, a surrogate or unassigned, none of which is
    # printable: str.isprintable() clears most texts at C speed; the pattern decides
    # the rest (a line break, an ideographic space, a format character).
    return text.isprintable() or bad.search(text) is None


def _collect(value: Any, keys: list, values: list) -> None:
    if isinstance(value, str):
        values.append(value)
    elif isinstance(value, dict):
        keys.extend(k for k in value if isinstance(k, str))
        for v in value.values():
            _collect(v, keys, values)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _collect(v, keys, values)


def _walk(value: Any, where: str, multiline: bool) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        why = text_problem(value, multiline)
        if why:
            yield where, why
    elif isinstance(value, dict):
        for k, v in value.items():
            key = str(k)
            here = f"{where}.{key}" if where else key
            if isinstance(k, str):
                why = text_problem(k)
                if why:
                    yield here, "key " + why
                    continue
            yield from _walk(v, here, multiline)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _walk(v, f"{where}[{i}]", multiline)


def shorten(value: Any, limit: int = 60) -> str:
    """A value as it may appear in a message: repr, cut to `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
