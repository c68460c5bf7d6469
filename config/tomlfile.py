"""Reading a TOML file a person wrote: every failure named with file, line and key.

Editors on a window PC save a UTF-8 BOM, a copy from a spreadsheet brings a GBK byte, a
generated file can nest arrays deeper than the parser's recursion: each of these is a
Problem a technician can act on, never a traceback (the settings and the tag lists both
read their files here).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11 (Raspberry Pi OS bullseye)
    import tomli as tomllib

from config.errors import ConfigError, Problem, key_at_line

BOM = "\ufeff"


def read_text(path: str | Path) -> str:
    """The file's text, a leading BOM dropped. FileNotFoundError passes through (callers
    say what a missing file means to them); anything else unreadable is a ConfigError."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise ConfigError([Problem(str(path), None, "", f"cannot read: {exc.strerror or exc}")]) from None
    return decode(data, str(path))


def decode(data: bytes, source: str) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        key = key_at_line(data.decode("utf-8", "replace"), line)
        raise ConfigError([Problem(source, line, key,
                                   f"not UTF-8: byte 0x{data[exc.start]:02x} at column {column} "
                                   "(save the file as UTF-8)")]) from None
    return text[1:] if text.startswith(BOM) else text


def parse(text: str, source: str) -> dict[str, Any]:
    """The TOML document `text`; ConfigError with the line (and key) of what is wrong."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = error_line(str(exc))
        raise ConfigError([Problem(source, line, key_at_line(text, line) if line else "",
                                   f"not valid TOML: {exc}")]) from None
    except RecursionError:
        raise too_deep(text, source) from None


def too_deep(text: str, source: str) -> ConfigError:
    """The error for a document nested deeper than Python's recursion limit lets us read."""
    line = deepest_line(text)
    return ConfigError([Problem(source, line, key_at_line(text, line),
                                "arrays or tables nested too deeply to read")])


def error_line(message: str) -> int | None:
    m = re.search(r"line (\d+)", message)
    return int(m.group(1)) if m else None


def deepest_line(text: str) -> int:
    """The line where brackets and braces outside strings nest deepest (first of equals)."""
    depth = best = 0
    best_line = line = 1
    quote = None
    escaped = comment = False
    for c in text:
        if c == "\n":
            line += 1
            comment = False
        if comment:
            continue
        if quote:
            if escaped:
                escaped = False
            elif c == "\\" and quote == '"':
                escaped = True
            elif c == quote:
                quote = None
            continue
        if c == "#":
            comment = True
        elif c in "\"'":
            quote = c
        elif c in "[{":
            depth += 1
            if depth > best:
                best, best_line = depth, line
        elif c in "]}":
            depth -= 1
    return best_line
