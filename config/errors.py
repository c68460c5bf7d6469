"""Settings errors that name the file, the line and the key."""
from __future__ import annotations

import errno
import re
from dataclasses import dataclass

from config.text import shorten, text_problem

_TABLE = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_.-]+)\s*=""")


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = self.file + (f":{self.line}" if self.line else "")
        return f"{where}: {shown_key(self.key)}: {self.message}" if self.key else f"{where}: {self.message}"


def shown_key(key: str) -> str:
    """A key as a message may print it: a key from outside may be huge or hold characters
    a terminal or a log cannot take (a lone surrogate from a JSON body)."""
    if len(key) > 80 or text_problem(key):
        return shorten(key, 80)
    return key


class ConfigError(Exception):
    """One or more problems in a settings file; str() lists them all, one a line."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def os_error_hint(exc: OSError) -> str:
    """What to do about an OSError a command did not name itself (a file, port or device
    it could not use), for the one line `pingjia` and `python -m terminal` print."""
    if exc.errno == errno.EADDRINUSE:
        return ("a port it needs is taken: stop the other process (another terminal or "
                "simulator?) or choose another port")
    return "-v shows where"


def _unquote(part: str) -> str:
    part = part.strip()
    if len(part) >= 2 and part[0] == part[-1] and part[0] in "\"'":
        return part[1:-1]
    return part


def _split(dotted: str) -> list[str]:
    return [_unquote(p) for p in re.findall(r'"[^"]*"|\'[^\']*\'|[^.]+', dotted)]


def locate_key(text: str | None, key: str) -> int | None:
    """Line number (1-based) where a dotted key is set, or its table begins.

    Good enough for the files technicians write: tables, dotted keys, inline tables
    (the line of the inline table is given for keys inside it).
    """
    if not text or not key:
        return None
    want = _split(key)
    best, best_depth = None, 0
    table: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        m = _TABLE.match(line)
        if m:
            table = _split(m.group(1))
            depth = _common(table, want)
            if depth == len(table) and depth > best_depth:
                best, best_depth = number, depth
            continue
        m = _KEY.match(line)
        if m:
            path = table + _split(m.group(1))
            depth = _common(path, want)
            if depth == len(path) and depth > best_depth:
                best, best_depth = number, depth
    return best


def key_at_line(text: str | None, line: int | None) -> str:
    """The dotted key set on `line` (1-based), or the table it is in; "" if none."""
    if not text or not line:
        return ""
    table: list[str] = []
    for number, content in enumerate(text.splitlines(), 1):
        m = _TABLE.match(content)
        if m:
            table = _split(m.group(1))
        else:
            m = _KEY.match(content)
        if number == line:
            if m and m.re is _KEY:
                return ".".join(table + _split(m.group(1)))
            return ".".join(table)
    return ".".join(table)


def _common(a: list[str], b: list[str]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n
