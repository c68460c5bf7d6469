"""Evaluation tag lists (评价标签): the built-in version-2 list, a file, or the centre's.

A list is checked before use: a bad list is refused whole, so the device keeps the list
it had. Levels 1 and 2 must offer at least one tag, since a bad rating needs a reason.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from config import tomlfile
from config.errors import ConfigError, Problem
from config.text import first_text_problem, shorten

BUILTIN = Path(__file__).with_name("tags_v2.toml")
SUBJECTS = ("item", "staff")
_CODE = re.compile(r"[0-9A-Za-z_-]{1,16}")


@dataclass(frozen=True)
class Tag:
    code: str
    text: str
    subject: str = "item"


@dataclass(frozen=True)
class TagList:
    version: str
    levels: Mapping[int, tuple[Tag, ...]]

    def for_level(self, level: int) -> tuple[Tag, ...]:
        return self.levels.get(level, ())

    def to_dict(self) -> dict:
        return {"version": self.version,
                "levels": {str(k): [{"code": t.code, "text": t.text, "subject": t.subject}
                                    for t in v] for k, v in sorted(self.levels.items())}}


def parse(data: Mapping[str, Any], source: str) -> TagList:
    """Build a TagList from `{"version": ..., "levels": {"1": [{code, text, subject?}]}}`."""
    problems = []

    def bad(key, message):
        problems.append(Problem(source, None, key, message))

    if not isinstance(data, Mapping):
        raise ConfigError([Problem(source, None, "", "must be a table with version and levels")])
    found = first_text_problem(data)  # a text the device cannot show or store: refused whole
    if found:
        raise ConfigError([Problem(source, None, found[0], found[1])])
    version = data.get("version")
    if not isinstance(version, str) or not 1 <= len(version) <= 16:
        bad("version", "must be a short string such as \"2\"")
    raw_levels = data.get("levels")
    levels: dict[int, tuple[Tag, ...]] = {}
    if not isinstance(raw_levels, Mapping):
        bad("levels", "must be a table of levels 1 to 5")
        raw_levels = {}
    for key, items in raw_levels.items():
        where = f"levels.{key}"
        if str(key) not in {"1", "2", "3", "4", "5"}:
            bad(where, "levels are 1 to 5")
            continue
        if not isinstance(items, list):
            bad(where, "must be a list of tags")
            continue
        tags, seen = [], set()
        for i, item in enumerate(items):
            here = f"{where}[{i}]"
            if not isinstance(item, Mapping):
                bad(here, "must be a table with code and text")
                continue
            code, text = item.get("code"), item.get("text")
            subject = item.get("subject", "item")
            if not isinstance(code, str) or not _CODE.fullmatch(code):
                bad(here + ".code", "must be 1-16 letters or digits")
            elif code in seen:
                bad(here + ".code", f"{code} appears twice")
            if not isinstance(text, str) or not 1 <= len(text) <= 40:
                bad(here + ".text", "must be 1-40 characters")
            if subject not in SUBJECTS:
                bad(here + ".subject", "must be \"item\" or \"staff\"")
            extra = set(item) - {"code", "text", "subject"}
            if extra:
                bad(here, "unknown keys " + shorten(", ".join(sorted(map(str, extra)))))
            if isinstance(code, str):
                seen.add(code)
            tags.append(Tag(str(code), str(text), str(subject)))
        levels[int(key)] = tuple(tags)
    for level in (1, 2):
        if not levels.get(level):
            bad(f"levels.{level}", "a bad rating needs at least one tag to choose")
    if problems:
        raise ConfigError(problems)
    return TagList(version, levels)


def load_file(path: str | Path) -> TagList:
    path = Path(path)
    try:
        data = tomlfile.parse(tomlfile.read_text(path), str(path))
    except FileNotFoundError:
        raise ConfigError([Problem(str(path), None, "", "tag file not found")]) from None
    return parse(data, str(path))


def builtin() -> TagList:
    return load_file(BUILTIN)


def for_settings(settings) -> TagList:
    return load_file(settings.tags.file) if settings.tags.file else builtin()
