"""A fake `lgpio` (the lg library's Python module) with the calls gpiozero's LGPIOFactory
makes. Lines keep their mode flags and level; `drive(gpio, level, tick_ns)` changes an
input line as the kernel would and calls the alert callbacks with the kernel's tick of
the edge (nanoseconds), exactly as lgpio's notification thread does."""
from __future__ import annotations

import threading

SET_ACTIVE_LOW = 4
SET_OPEN_DRAIN = 8
SET_OPEN_SOURCE = 16
SET_PULL_UP = 32
SET_PULL_DOWN = 64
SET_PULL_NONE = 128
SET_BIAS_PULL_UP = SET_PULL_UP
SET_BIAS_PULL_DOWN = SET_PULL_DOWN
SET_BIAS_DISABLE = SET_PULL_NONE

RISING_EDGE = 1
FALLING_EDGE = 2
BOTH_EDGES = 3

# gpio_get_mode bits (lgpio's GPIO_IS_*), as gpiozero's LGPIOPin reads them
_IS_OUT = 1 << 1
_IS_LG_INPUT = 1 << 8
_IS_LG_OUTPUT = 1 << 9
_IS_LG_ALERT = 1 << 10


class error(Exception):
    pass


class _Line:
    def __init__(self):
        self.mode = 0
        self.level = 1
        self.claimed = False


class _Chip:
    def __init__(self, number: int):
        self.number = number
        self.lines: dict[int, _Line] = {}
        self.callbacks: list["_Callback"] = []
        self.closed = False

    def line(self, gpio: int) -> _Line:
        return self.lines.setdefault(gpio, _Line())


_lock = threading.Lock()
_chips: dict[int, _Chip] = {}   # handle -> chip
opened: list[int] = []          # chip numbers passed to gpiochip_open, in order
busy: set[int] = set()          # lines another owner holds (a kernel driver, a process)


def reset() -> None:
    with _lock:
        _chips.clear()
        opened.clear()
        busy.clear()


def _chip(handle: int) -> _Chip:
    try:
        chip = _chips[handle]
    except KeyError:
        raise error("bad handle") from None
    if chip.closed:
        raise error("chip closed")
    return chip


def gpiochip_open(chip: int) -> int:
    with _lock:
        handle = len(_chips) + 1
        _chips[handle] = _Chip(chip)
        opened.append(chip)
        return handle


def gpiochip_close(handle: int) -> None:
    _chip(handle).closed = True


def _flags_to_mode(flags: int) -> int:
    return flags & (SET_ACTIVE_LOW | SET_OPEN_DRAIN | SET_OPEN_SOURCE | SET_PULL_UP
                    | SET_PULL_DOWN | SET_PULL_NONE)


def _claim(handle: int, gpio: int) -> _Line:
    if gpio in busy:
        raise error("GPIO busy")
    return _chip(handle).line(gpio)


def gpio_claim_input(handle: int, gpio: int, flags: int = 0) -> int:
    line = _claim(handle, gpio)
    line.mode = _IS_LG_INPUT | _flags_to_mode(flags)
    line.claimed = True
    if flags & SET_PULL_UP:
        line.level = 1
    elif flags & SET_PULL_DOWN:
        line.level = 0
    return 0


def gpio_claim_output(handle: int, gpio: int, level: int = 0, flags: int = 0) -> int:
    line = _claim(handle, gpio)
    line.mode = _IS_LG_OUTPUT | _IS_OUT | _flags_to_mode(flags)
    line.level = int(bool(level))
    line.claimed = True
    return 0


def gpio_claim_alert(handle: int, gpio: int, edges: int, flags: int = 0, notify_handle=None) -> int:
    line = _chip(handle).line(gpio)
    line.mode = _IS_LG_INPUT | _IS_LG_ALERT | _flags_to_mode(flags)
    line.claimed = True
    return 0


def gpio_free(handle: int, gpio: int) -> int:
    line = _chip(handle).line(gpio)
    line.claimed = False
    line.mode = 0
    return 0


def gpio_get_mode(handle: int, gpio: int) -> int:
    return _chip(handle).line(gpio).mode


def gpio_read(handle: int, gpio: int) -> int:
    return _chip(handle).line(gpio).level


def gpio_write(handle: int, gpio: int, level: int) -> int:
    line = _chip(handle).line(gpio)
    if not line.mode & _IS_OUT:
        raise error("GPIO not an output")
    line.level = int(bool(level))
    return 0


def gpio_set_debounce_micros(handle: int, gpio: int, micros: int) -> int:
    _chip(handle).line(gpio).debounce = micros
    return 0


def tx_pwm(handle: int, gpio: int, frequency, duty, offset=0, cycles=0) -> int:
    _chip(handle).line(gpio).pwm = (frequency, duty)
    return 0


class _Callback:
    def __init__(self, chip: _Chip, handle: int, gpio: int, edges: int, func):
        self.chip, self.handle, self.gpio, self.edges, self.func = chip, handle, gpio, edges, func

    def cancel(self) -> None:
        with _lock:
            if self in self.chip.callbacks:
                self.chip.callbacks.remove(self)


def callback(handle: int, gpio: int, edge: int = RISING_EDGE, func=None) -> _Callback:
    chip = _chip(handle)
    cb = _Callback(chip, handle, gpio, edge, func)
    with _lock:
        chip.callbacks.append(cb)
    return cb


def drive(gpio: int, level: int, tick_ns: int, chip_number: int | None = None) -> None:
    """The outside world moves input line `gpio` to `level` at kernel time `tick_ns`."""
    for chip in list(_chips.values()):
        if chip.closed or (chip_number is not None and chip.number != chip_number):
            continue
        line = chip.line(gpio)
        if line.level == level:
            continue
        line.level = level
        edge = RISING_EDGE if level else FALLING_EDGE
        for cb in list(chip.callbacks):
            if cb.gpio == gpio and cb.edges & edge and cb.func is not None:
                cb.func(chip.number, gpio, level, tick_ns)
