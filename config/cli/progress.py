"""A small progress bar on stderr for the technician's long operations (export, import).

Drawn only when stderr is a terminal and the command is not asked for JSON: a script or
a log file gets no carriage returns. Redraws at most ten times a second.
"""
from __future__ import annotations

import sys
import time
from typing import Optional, TextIO

WIDTH = 30


class Progress:
    def __init__(self, total: int, label: str = "", *, enabled: Optional[bool] = None,
                 stream: Optional[TextIO] = None, clock=time.monotonic):
        self.stream = stream or sys.stderr
        self.total = max(0, int(total))
        self.label = label
        self.done = 0
        self.enabled = (self.stream.isatty() if enabled is None else enabled) and self.total > 0
        self._clock = clock
        self._drawn_at = None

    def advance(self, n: int = 1) -> None:
        self.done = min(self.total, self.done + n)
        now = self._clock()
        if self._drawn_at is None or now - self._drawn_at >= 0.1 or self.done == self.total:
            self._draw()
            self._drawn_at = now

    def line(self) -> str:
        part = self.done / self.total if self.total else 1.0
        filled = int(WIDTH * part)
        return (f"{self.label} [{'#' * filled}{'.' * (WIDTH - filled)}] "
                f"{self.done}/{self.total} {part:4.0%}")

    def _draw(self) -> None:
        if self.enabled:
            self.stream.write("\r" + self.line())
            self.stream.flush()

    def close(self) -> None:
        if self.enabled and self._drawn_at is not None:
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def for_args(args, total: int, label: str) -> Progress:
    """A bar unless the command prints JSON."""
    return Progress(total, label, enabled=None if not getattr(args, "json", False) else False)
