"""The reserve: a few MiB of disk held in the data directory against a full disk.

When the disk fills up, the store's commit fails. The terminal then gives the reserve's
space back (deletes the file) and tries again, so that what it already acknowledged (a
rating held in memory, the records of an interrupted visit, the outcome written on a
clean stop) still reaches the disk. While the reserve is gone the terminal takes no new
invitations (it shows the storage error): the space is for records already promised. It
is made again, and the terminal takes invitations again, once the disk has room for it
and as much again.

The size is a module constant rather than a setting: it only has to hold the records of
a few visits (about 1 KiB each, with SQLite's pages and WAL frames around them).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from config.atomic import fsync_dir

log = logging.getLogger("pingjia.terminal")

RESERVE_NAME = "pingjia.reserve"
RESERVE_BYTES = 4 * 1024 * 1024
_CHUNK = 1024 * 1024


class Reserve:
    def __init__(self, data_dir: str | Path, size: int = RESERVE_BYTES):
        self.dir = Path(data_dir)
        self.path = self.dir / RESERVE_NAME
        self.size = size
        self.released = 0   # how often its space was given to the store

    def in_place(self) -> bool:
        try:
            return self.path.stat().st_size >= self.size
        except OSError:
            return False

    def free_bytes(self) -> int:
        st = os.statvfs(self.dir)
        return st.f_bavail * st.f_frsize

    def ensure(self) -> bool:
        """Make the reserve if it is missing and the disk has room for it and as much
        again beside it. True when it is in place."""
        if self.in_place():
            return True
        try:
            if self.free_bytes() < 2 * self.size:
                return False
            tmp = self.path.with_name(RESERVE_NAME + ".tmp")
            try:
                self._fill(tmp)
                os.replace(tmp, self.path)
                fsync_dir(self.dir)
            except OSError:
                tmp.unlink(missing_ok=True)
                raise
        except OSError as exc:
            log.warning("the disk reserve %s cannot be made: %s", self.path, exc)
            return False
        log.info("disk reserve of %d bytes in place at %s", self.size, self.path)
        return True

    def _fill(self, tmp: Path) -> None:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            try:
                os.posix_fallocate(fd, 0, self.size)  # real blocks, not a sparse file
            except (AttributeError, OSError) as exc:
                if getattr(exc, "errno", None) == 28:  # ENOSPC: no point writing zeros
                    raise
                zeros = bytes(_CHUNK)
                left = self.size
                while left > 0:
                    left -= os.write(fd, zeros[:min(left, _CHUNK)])
            os.fsync(fd)
        finally:
            os.close(fd)

    def release(self) -> bool:
        """Give the reserve's space to the store. True if there was a reserve to give."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            log.error("the disk reserve %s cannot be released: %s", self.path, exc)
            return False
        self.released += 1
        log.error("storage failed: disk reserve %s released for the records already promised",
                  self.path)
        return True

    def health(self) -> dict:
        return {"path": str(self.path), "bytes": self.size, "in_place": self.in_place(),
                "released": self.released}

