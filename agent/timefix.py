"""Corrected times for records made while the clock was not synchronised.

A record keeps `mono_ms`, the monotonic time of its own time stamp (`rated_at` for a
rating, `invited_at` for an unrated record), and the `boot_id`. The monotonic clock runs
on from boot, unaffected by wall-clock jumps; once real time is known, the fixed offset
`trusted wall − monotonic now` turns any `mono_ms` of the same boot into real time.
Real time comes from the kernel (NTP synchronised: basis "ntp") or from the central
system's `server_time` (basis "server_time", whole seconds plus network delay).
A record of an earlier boot cannot be corrected: its monotonic clock restarted at zero.
"""
from __future__ import annotations

import time
from datetime import datetime
from typing import Callable, NamedTuple, Optional

from terminal.clock import iso


class Offset(NamedTuple):
    ms: int      # add to a monotonic ms reading of this boot to get Unix ms
    basis: str   # "ntp" or "server_time"


class TrustedTime:
    """Knows, when it can, how monotonic time of this boot maps to real time."""

    def __init__(self, *, wall: Callable[[], float] = time.time,
                 mono_ms: Callable[[], int] = lambda: time.monotonic_ns() // 1_000_000,
                 kernel_synced: Callable[[], bool]):
        self.wall = wall
        self.mono_ms = mono_ms
        self.kernel_synced = kernel_synced
        self._server: Optional[tuple[int, int]] = None  # (server_time s, mono ms at receipt)

    def heard_server_time(self, server_time: int, mono_ms: int) -> None:
        self._server = (server_time, mono_ms)

    def offset(self) -> Optional[Offset]:
        if self.kernel_synced():
            return Offset(int(self.wall() * 1000) - self.mono_ms(), "ntp")
        if self._server is not None:
            server_time, at_mono = self._server
            return Offset(server_time * 1000 - at_mono, "server_time")
        return None

    def synced(self) -> dict:
        off = self.offset()
        return {"synced": bool(off and off.basis == "ntp"), "basis": off.basis if off else None}


def corrected(kind: str, invited_at: str, rated_at: Optional[str], mono_ms: int,
              offset: Offset) -> tuple[str, Optional[str]]:
    """Corrected (invited_at, rated_at) of one record, in the record's own UTC offset.

    `mono_ms` belongs to `rated_at` for a rating (invited_at keeps its distance to it,
    measured on the same wrong clock) and to `invited_at` for an unrated record.
    """
    invited = datetime.fromisoformat(invited_at)
    anchor = datetime.fromtimestamp((offset.ms + mono_ms) / 1000, invited.tzinfo)
    if kind == "rating" and rated_at:
        rated = datetime.fromisoformat(rated_at)
        return iso(anchor - (rated - invited)), iso(anchor)
    return iso(anchor), None


def iso_at(unix_s: float, tz) -> str:
    return iso(datetime.fromtimestamp(unix_s, tz))

