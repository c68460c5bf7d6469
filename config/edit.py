"""Changing the settings file the way a technician would by hand, but checked.

tomlkit keeps every comment, blank line and key order; only the value set changes. The
whole result goes through the same loader the services use before anything is written,
and the write is atomic (config/atomic.py): a bad value or a power cut never leaves a
file the services refuse.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import tomlkit
from tomlkit.exceptions import TOMLKitError

from config import changes
from config import check as settings_check
from config import settings as schema
from config import tomlfile
from config.atomic import write_text
from config.document import render
from config.errors import ConfigError, Problem, key_at_line


class KeyProblem(ValueError):
    """A key that names no setting: a usage error, nothing is read or written."""


@dataclass(frozen=True)
class Key:
    section: str
    name: str
    sub: Optional[str] = None  # an entry of a table setting, e.g. the "5" of buttons.pins.5

    def __str__(self) -> str:
        return ".".join(p for p in (self.section, self.name, self.sub) if p is not None)

    @property
    def setting(self) -> str:
        return f"{self.section}.{self.name}"


def parse_key(text: str) -> Key:
    parts = text.strip().split(".")
    if len(parts) not in (2, 3) or not all(parts):
        raise KeyProblem(f"{text!r}: write SECTION.KEY, e.g. site.window_no (or "
                         "buttons.pins.5 for one entry of a table)")
    section, name = parts[0], parts[1]
    cls = schema.SECTIONS.get(section)
    if cls is None:
        raise KeyProblem(f"no section [{section}]; known: " + ", ".join(schema.SECTIONS))
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if name not in fields:
        raise KeyProblem(f"no setting {section}.{name}; [{section}] has: " + ", ".join(fields))
    if len(parts) == 3 and not isinstance(default_of(section, name), dict):
        raise KeyProblem(f"{section}.{name} is not a table: set it whole")
    return Key(section, name, parts[2] if len(parts) == 3 else None)


def default_of(section: str, name: str) -> Any:
    f = next(f for f in dataclasses.fields(schema.SECTIONS[section]) if f.name == name)
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def parse_value(text: str, sample: Any = None) -> Any:
    """A TOML value (`true`, `90`, `[5, 4, 3, 2, 1]`, `"x"`); anything else, or anything
    that is not a string where the setting takes one, is the text itself."""
    try:
        value = tomlkit.parse("v = " + text)["v"]
        value = value.unwrap() if hasattr(value, "unwrap") else value
    except (TOMLKitError, ValueError):
        return text
    if isinstance(sample, str) and not isinstance(value, str):
        return text
    return value


def default_text() -> str:
    """The documented default file (what config/pingjia.toml holds)."""
    return render()


def read_text(path: Path) -> tuple[str, bool]:
    """The file's text, or the documented defaults when it does not exist yet."""
    try:
        return tomlfile.read_text(path), True
    except FileNotFoundError:
        return default_text(), False


def parse_for(key: Key, raw: str) -> Any:
    """The value a technician typed, read for the setting `key` names."""
    default = default_of(key.section, key.name)
    if key.sub is not None:
        return parse_value(raw, next(iter(default.values()), None))
    return parse_value(raw, default)


def set_value(text: str, key: Key, value: Any, source: str = "<settings>") -> str:
    """`text` with one setting changed to `value`; comments and layout stay as they were."""
    try:
        doc = tomlkit.parse(text)
    except TOMLKitError as exc:
        line = getattr(exc, "line", None)
        raise ConfigError([Problem(source, line, key_at_line(text, line),
                                   f"not valid TOML: {exc}")]) from None
    except RecursionError:
        raise tomlfile.too_deep(text, source) from None
    if key.section not in doc:
        doc.add(key.section, tomlkit.table())
    table = doc[key.section]
    if key.sub is None:
        table[key.name] = _item(value)
        return tomlkit.dumps(doc)
    if key.name in table:
        table[key.name][key.sub] = _item(value)
    else:  # the file leaves the table at its default: write it whole, with the one change
        whole = {str(k): v for k, v in default_of(key.section, key.name).items()}
        whole[key.sub] = value
        inline = tomlkit.inline_table()
        inline.update(whole)
        table[key.name] = inline
    return tomlkit.dumps(doc)


def _item(value):
    if isinstance(value, dict):
        inline = tomlkit.inline_table()
        inline.update({str(k): v for k, v in value.items()})
        return inline
    return value


def check(text: str, source: str) -> schema.Settings:
    """The settings `text` stands for, checked as the terminal's start will (config/check.py:
    tag file and API token included; the port is the running terminal's, not probed)."""
    return settings_check.check_text(text, source).settings


@dataclass(frozen=True)
class Outcome:
    path: str
    created: bool
    changed: list
    live: list
    restart: dict

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def old_settings(text: str, source: str) -> Optional[schema.Settings]:
    try:
        return schema.loads(text, source)
    except ConfigError:
        return None


def write(path: Path, old_text: str, new_text: str, existed: bool = True) -> Outcome:
    """Check `new_text` and put it in place atomically; ConfigError (file untouched) if
    it is not a valid settings file."""
    new = check(new_text, str(path))
    keys = changes.changed_keys(old_settings(old_text, str(path)), new)
    if new_text != old_text or not existed:
        write_text(path, new_text)
    split = changes.classify(keys)
    return Outcome(str(path), not existed, keys, split["live"], split["restart"])


def set_many(path: Path, values) -> Outcome:
    """Set `{"section.key": value}` in the settings file in one checked, atomic write."""
    text, existed = read_text(path)
    new_text = text
    for key, value in values.items():
        new_text = set_value(new_text, parse_key(key), value, str(path))
    return write(path, text, new_text, existed)
