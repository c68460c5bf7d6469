"""Time as the flow sees it: wall time, monotonic milliseconds, and whether to trust it.

A Raspberry Pi has no real-time clock: until NTP has synchronised, the wall clock may be
days off. Records carry `clock_synced` and the monotonic time so the agent can correct
them later; nothing here ever guesses.
"""
from __future__ import annotations

import ctypes
import os
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

CHINA = timezone(timedelta(hours=8))


@dataclass(frozen=True)
class Now:
    mono_ms: int
    wall: datetime  # aware
    synced: bool

    def iso(self) -> str:
        return iso(self.wall)


def iso(wall: datetime) -> str:
    """ISO 8601 with offset and whole seconds, e.g. 2026-11-22T09:21:10+08:00."""
    return wall.replace(microsecond=0).isoformat()


def boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip()
    except OSError:  # not Linux: a per-process id keeps mono_ms meaningful
        import uuid
        return "process-" + str(uuid.uuid4())


class _Timex(ctypes.Structure):
    # struct timex from <sys/timex.h>; only `status` is read, the rest is padding
    # large enough for every Linux ABI.
    _fields_ = [("modes", ctypes.c_uint), ("_pad0", ctypes.c_long * 5),
                ("status", ctypes.c_int), ("_pad1", ctypes.c_long * 40)]


_TIME_ERROR = 5
_libc = None


def kernel_clock_synced() -> bool:
    """True when the kernel says the clock is synchronised (adjtimex is not TIME_ERROR).

    systemd-timesyncd, chrony and ntpd all clear the kernel's unsynchronised flag.
    """
    global _libc
    try:
        if _libc is None:
            # the process's own symbols, libc's among them: find_library would run ldconfig
            _libc = ctypes.CDLL(None, use_errno=True)
        tx = _Timex()
        state = _libc.adjtimex(ctypes.byref(tx))
        return state not in (-1, _TIME_ERROR)
    except (OSError, AttributeError):
        return os.path.exists("/run/systemd/timesync/synchronized")


class SystemClock:
    """The real clock; `synced` is re-read at most every few seconds (it is a syscall)."""

    def __init__(self, tz=CHINA, synced_probe=kernel_clock_synced, recheck_ms: int = 5000):
        self.tz = tz
        self._probe = synced_probe
        self._recheck_ms = recheck_ms
        self._synced = None
        self._checked_at = -recheck_ms

    def mono_ms(self) -> int:
        return time.monotonic_ns() // 1_000_000

    def now(self) -> Now:
        mono = self.mono_ms()
        if mono - self._checked_at >= self._recheck_ms:
            self._synced = bool(self._probe())
            self._checked_at = mono
        return Now(mono, datetime.now(self.tz), self._synced)


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, start: datetime | None = None, mono_ms: int = 1_000_000, synced: bool = True):
        self.wall = start or datetime(2026, 11, 22, 9, 0, 0, tzinfo=CHINA)
        self._mono = mono_ms
        self.synced = synced

    def mono_ms(self) -> int:
        return self._mono

    def now(self) -> Now:
        return Now(self._mono, self.wall, self.synced)

    def advance(self, ms: int) -> Now:
        self._mono += ms
        self.wall += timedelta(milliseconds=ms)
        return self.now()
