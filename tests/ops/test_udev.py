"""The reader's udev rule (udev/99-pingjia-reader.rules), run through a small evaluator of
the udev rule language: which device ends up as /dev/pingjia-reader, alone and with a
hall's narrower rule in 98-pingjia-reader-local.rules next to it."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from config import settings as config_settings
from tests.ops.conftest import ROOT

RULE = ROOT / "udev" / "99-pingjia-reader.rules"
LOCAL_NAME = "/etc/udev/rules.d/98-pingjia-reader-local.rules"
TOKEN = re.compile(r'\s*([A-Z_]+)(?:\{([^}]*)\})?\s*(==|!=|\+=|-=|:=|=)\s*"([^"]*)"\s*(,|$)')


def parse(text: str) -> list[list[tuple[str, str | None, str, str]]]:
    """Rule lines as lists of (key, attribute, operator, value)."""
    rules = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        pos, tokens = 0, []
        while pos < len(line):
            m = TOKEN.match(line, pos)
            assert m, f"cannot parse {line[pos:]!r} in {line!r}"
            tokens.append(m.groups()[:4])
            pos = m.end()
        rules.append(tokens)
    return rules


def evaluate(files: list[str], device: dict, existing: set[str]) -> dict:
    """What udev does for one event: every file in order; GOTO jumps to its LABEL in the
    same file; a line applies when all its matches hold. Returns the device's symlinks,
    group, mode and environment."""
    out = {"SYMLINK": [], "GROUP": None, "MODE": None, "ENV": dict(device.get("ENV", {}))}
    for text in files:
        rules = parse(text)
        labels = {tok[0][3]: i for i, tok in enumerate(rules) if tok[0][0] == "LABEL"}
        i = 0
        while i < len(rules):
            tokens, i = rules[i], i + 1
            if tokens[0][0] == "LABEL":
                continue
            if not all(matches(key, attr, op, value, device, out, existing)
                       for key, attr, op, value in tokens if op in ("==", "!=")):
                continue
            for key, attr, op, value in tokens:
                if op in ("==", "!="):
                    continue
                if key == "GOTO":
                    assert value in labels, f"GOTO {value} without its LABEL"
                    i = labels[value]
                elif key == "SYMLINK":
                    out["SYMLINK"] = ([] if op in ("=", ":=") else out["SYMLINK"]) + [value]
                elif key == "ENV":
                    out["ENV"][attr] = value
                else:
                    out[key] = value
    return out


def matches(key, attr, op, value, device, out, existing) -> bool:
    if key == "SUBSYSTEM":
        have = device["SUBSYSTEM"]
    elif key == "ATTRS":
        have = device["ATTRS"].get(attr)
    elif key == "ENV":
        have = out["ENV"].get(attr, "")
    elif key == "TEST":
        have = value if value in existing else None
    else:
        raise AssertionError(f"the evaluator does not know {key}")
    hit = have is not None and re.fullmatch(value.replace("*", ".*"), have) is not None
    return hit if op == "==" else not hit


def tty(vendor: str, product: str, serial: str) -> dict:
    return {"SUBSYSTEM": "tty", "ATTRS": {"idVendor": vendor, "idProduct": product,
                                          "serial": serial}}


READER = tty("1a86", "7523", "READER-0001")        # the ID-card reader, a CH340 inside
PRINTER = tty("1a86", "7523", "PRINTER-77")         # the ticket printer, the same chip
ARDUINO = tty("2341", "0043", "A1")                 # something else entirely
LOCAL = ('SUBSYSTEM=="tty", ATTRS{idVendor}=="1a86", ATTRS{serial}=="READER-0001", '
         'ENV{PINGJIA_READER}="1", SYMLINK+="pingjia-reader", SYMLINK+="idcard", '
         'GROUP="dialout", MODE="0660"\n')


def names(device, local: bool) -> list[str]:
    files = ([LOCAL] if local else []) + [RULE.read_text(encoding="utf-8")]
    return evaluate(files, device, {LOCAL_NAME} if local else set())["SYMLINK"]


def test_the_rule_names_the_default_reader_port():
    assert "/dev/" + names(READER, local=False)[0] == config_settings.defaults().reader.port
    result = evaluate([RULE.read_text(encoding="utf-8")], READER, set())
    assert result["GROUP"] == "dialout" and result["MODE"] == "0660"


@pytest.mark.parametrize("device", [tty("067b", "2303", "x"), tty("10c4", "ea60", "x"),
                                    tty("0403", "6001", "x"), tty("1a86", "55d4", "x")])
def test_each_usb_serial_chip_is_named(device):
    assert names(device, local=False) == ["pingjia-reader", "idcard"]


def test_other_devices_and_subsystems_are_not_named():
    assert names(ARDUINO, local=False) == []
    assert names({**READER, "SUBSYSTEM": "usb"}, local=False) == []


def test_without_a_local_rule_any_adapter_with_the_chip_takes_the_name():
    # why the hall's rule exists: the printer would be /dev/pingjia-reader too
    assert names(PRINTER, local=False) == ["pingjia-reader", "idcard"]


def test_a_local_rule_names_the_reader_and_nothing_else_gets_the_name():
    assert names(READER, local=True) == ["pingjia-reader", "idcard"]   # once, not twice
    assert names(PRINTER, local=True) == []
    assert names(ARDUINO, local=True) == []


def test_the_rule_documents_the_local_file_it_steps_aside_for():
    text = RULE.read_text(encoding="utf-8")
    assert f'TEST=="{LOCAL_NAME}"' in text
    assert "98-pingjia-reader-local.rules" in (ROOT / "docs" / "install.md").read_text(encoding="utf-8")
