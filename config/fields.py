"""How one setting is declared and checked: `setting()` (default, doc, check), the checks
any section may use, and building a section's dataclass from its TOML table.

Apart from config/settings.py so that file is the list of the settings themselves; this
is the machinery every section shares.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import re
from dataclasses import field
from typing import Any, Callable, Mapping

from config.text import first_text_problem, shorten


def setting(default: Any, doc: str, check: Callable[[Any], str | None] | None = None):
    """A settings field: `check(value)` returns an error text or None."""
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda d=default: copy_value(d),
                     metadata={"doc": doc, "check": check})
    return field(default=default, metadata={"doc": doc, "check": check})


def copy_value(value):
    """A deep copy of a default or a value: tables and lists are never shared."""
    if isinstance(value, dict):
        return {k: copy_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_value(v) for v in value]
    return value


# --- checks any section may use -------------------------------------------------

def one_of(*choices):
    def check(value):
        if value not in choices:
            return "must be one of " + ", ".join(repr(c) for c in choices)
        return None
    return check


def int_range(low, high):
    def check(value):
        if not low <= value <= high:
            return f"must be between {low} and {high}"
        return None
    return check


def matches(pattern, what):
    rx = re.compile(pattern)

    def check(value):
        if not rx.fullmatch(value):
            return f"must be {what}"
        return None
    return check


def max_len(n):
    def check(value):
        if len(value) > n:
            return f"must be at most {n} characters"
        return None
    return check


def ip_literal(value):
    # No host names: the device binds before any resolver may answer (a hall network
    # often has none), and "localhost" may mean ::1 on one image and 127.0.0.1 on another.
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return ("must be an IP address such as 0.0.0.0 (every interface), 127.0.0.1 "
                "(this device only) or ::; host names are not looked up")
    return None


# --- a section from its table ---------------------------------------------------

def build_section(cls, name, raw, report):
    """One section's dataclass from its table: each value matched to its default's type,
    its texts checked, then its field's own check; `report(key, message)` hears every
    problem (unknown keys too) and the section is built from the values that passed."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for key, value in raw.items():
        where = f"{name}.{key}"
        f = fields.get(key)
        if f is None:
            report(where, "unknown key; known: " + ", ".join(fields))
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        value, error = _coerce(value, default)
        if error is None:
            error = _text_error(value, where)
        if error is None and f.metadata.get("check"):
            error = f.metadata["check"](value)
        if error:
            report(where, f"{error} (got {shorten(value)})")
            continue
        values[key] = value
    return cls(**values)


def _text_error(value, where: str) -> str | None:
    """Every string of a setting, inside lists and tables too, must be one the device can
    show, store and log (config/text.py); no setting holds a line break."""
    found = first_text_problem(value, where)
    if found is None:
        return None
    path, why = found
    return why if path == where else f"{path[len(where):].lstrip('.')}: {why}"


def _coerce(value, default):
    """Match the type of the default; integer-keyed tables get integer keys."""
    if isinstance(default, bool):
        return (value, None) if isinstance(value, bool) else (value, "must be true or false")
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            return value, "must be an integer"
        return value, None
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return value, "must be a number"
        return float(value), None
    if isinstance(default, str):
        return (value, None) if isinstance(value, str) else (value, "must be a string")
    if isinstance(default, list):
        if not isinstance(value, list):
            return value, "must be a list"
        # a list whose default is empty (display.fonts) is a list of texts
        sample = default[0] if default else ""
        if sample is not None:
            for item in value:
                _, err = _coerce(item, sample)
                if err:
                    return value, "every item " + err
        return list(value), None
    if isinstance(default, dict):
        if not isinstance(value, Mapping):
            return value, "must be a table"
        sample_key = next(iter(default), None)
        sample_val = default[sample_key] if default else None
        out = {}
        for k, v in value.items():
            if isinstance(sample_key, int):
                if not (str(k).isascii() and str(k).isdigit()):  # int("²") fails
                    return value, f"key {k!r} must be a level number"
                k = int(k)
            if sample_val is not None:
                v, err = _coerce(v, sample_val)
                if err:
                    return value, f"entry {k}: {err}"
            out[k] = v
        return out, None
    return value, None
