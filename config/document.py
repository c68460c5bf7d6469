"""Writes the documented default settings file from the schema.

`python -m config.document > config/pingjia.toml` regenerates it; a test checks that
the shipped file is exactly what this prints, so the docs cannot drift from the code.
"""
from __future__ import annotations

import dataclasses
import json

from config import settings as schema
from config.levels import NAMES

HEADER = """\
# Pingjia settings (/etc/pingjia/pingjia.toml on a device, or --config FILE).
#
# Every key is shown with its default value. Remove a key to use the default.
# Check a file with `pingjia config validate`; a bad file names the line and key,
# and the services refuse to start until it is fixed.
"""

SECTION_DOCS = {
    "device": "This device",
    "site": "Where the device stands: these values go into every record",
    "buttons": f"Five rating buttons with LEDs (keys are levels: 5 = {NAMES[5]} … 1 = {NAMES[1]})",
    "display": "The OLED panel (luma.oled) or a simulated one",
    "api": "Local API for the window PC or kiosk app (see docs/local-api.md)",
    "timeouts": "Timeouts in seconds",
    "levels": "Labels of the five levels; some places use 很好/好/一般/差/很差",
    "tags": "Evaluation tags (评价标签) offered for each level",
    "texts": "Screen texts (the central system may override them)",
    "sound": "Prompt sounds: spoken clips, a buzzer, or none",
    "qr": "QR code to rate later or add comments on the platform (items[].rate_url, or this template)",
    "central": "The central 好差评 system the agent uploads to",
    "reader": "ID-card reader (kiosk mode)",
}


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(type(value))


def render() -> str:
    out = [HEADER]
    for name, cls in schema.SECTIONS.items():
        out.append(f"\n# {SECTION_DOCS[name]}\n[{name}]")
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            out.append(f"# {f.metadata['doc']}")
            out.append(f"{f.name} = {toml_value(default)}")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(render(), end="")
