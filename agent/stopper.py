"""The agent's stop flag: set from a signal handler, it also wakes a select() that
waits on it (self-pipe), so that a stop ends a wait at once.
"""
from __future__ import annotations

import os


class Stopper:
    """A stop flag that also wakes a select() (self-pipe): safe to set from a signal handler."""

    def __init__(self):
        self._r, self._w = os.pipe()
        os.set_blocking(self._w, False)
        self.flag = False

    def set(self) -> None:
        self.flag = True
        try:
            os.write(self._w, b"x")
        except OSError:
            pass

    def is_set(self) -> bool:
        return self.flag

    def fileno(self) -> int:
        return self._r

    def close(self) -> None:
        for fd in (self._r, self._w):
            try:
                os.close(fd)
            except OSError:
                pass
