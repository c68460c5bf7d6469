"""Giving freed heap back to the system: glibc keeps the pages of freed memory mapped, so
a process's resident set stays at its high-water mark after a burst of work (the
terminal's start-up, one of the agent's batches) unless it asks for a trim.
"""
from __future__ import annotations

_libc = None


def _glibc():
    global _libc
    if _libc is None:
        try:
            import ctypes  # here: only a process that trims needs it
            _libc = ctypes.CDLL("libc.so.6")
            _libc.malloc_trim  # noqa: B018 - present in glibc only
        except (OSError, AttributeError):
            _libc = False
    return _libc


def give_back_memory() -> None:
    """Hand the freed heap back to the system (glibc malloc_trim); a no-op without glibc."""
    libc = _glibc()
    if libc:
        libc.malloc_trim(0)
