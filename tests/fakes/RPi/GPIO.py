"""A fake `RPi.GPIO` with the calls luma.core's SPI interface makes. `lines` maps a BCM
number to its state: "out" with a level while set up, gone after cleanup (a freed line
is an input again: it floats)."""
from __future__ import annotations

BCM = 11
BOARD = 10
OUT = 0
IN = 1
LOW = 0
HIGH = 1

lines: dict[int, dict] = {}
mode = None


def setmode(value) -> None:
    global mode
    mode = value


def setwarnings(flag) -> None:
    pass


def setup(pin, direction, initial=None, pull_up_down=None) -> None:
    lines[pin] = {"direction": "out" if direction == OUT else "in",
                  "level": initial if initial is not None else LOW}


def output(pin, value) -> None:
    if pin not in lines or lines[pin]["direction"] != "out":
        raise RuntimeError(f"GPIO{pin} is not set up as an output")
    lines[pin]["level"] = HIGH if value else LOW


def cleanup(pins=None) -> None:
    if pins is None:
        lines.clear()
        return
    for pin in ([pins] if isinstance(pins, int) else pins):
        lines.pop(pin, None)
