"""Wake-up of the sync agent: one Unix datagram from the terminal after each stored record.

The agent binds a datagram socket at `<device.data_dir>/agent.wake`; the terminal calls
`notify(path)` after a commit. A datagram socket needs no connection and no reply: the
send is non-blocking and every error is ignored (agent down, socket missing, queue full),
so the terminal is never slowed or broken by the agent. The agent's slow periodic scan
catches anything a lost datagram missed.
"""
from __future__ import annotations

import os
import select
import socket
import stat
from pathlib import Path

NAME = "agent.wake"


def wake_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / NAME


def notify(path: str | Path) -> None:
    """Send one byte to the agent; never blocks, never raises."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            sock.sendto(b"!", str(path))
    except OSError:
        pass


class WakeSocket:
    """The agent's end: `wait(timeout, *extra_fds)` returns when woken, a fd is ready, or
    the time is up; it drains every queued datagram so many records make one wake-up."""

    def __init__(self, path: str | Path, mode: int = 0o660):
        self.path = str(path)
        try:
            if stat.S_ISSOCK(os.lstat(self.path).st_mode):
                os.unlink(self.path)  # stale: left by an agent that was killed
        except FileNotFoundError:
            pass
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self.sock.bind(self.path)
            os.chmod(self.path, mode)  # the terminal may run as another user of the group
        except OSError:
            self.sock.close()
            raise
        self.sock.setblocking(False)

    def fileno(self) -> int:
        return self.sock.fileno()

    def wait(self, timeout: float | None, *extra) -> bool:
        """True when a wake-up came (or an extra fd is readable) before the timeout."""
        ready, _, _ = select.select([self.sock, *extra], [], [], timeout)
        self.drain()
        return bool(ready)

    def drain(self) -> None:
        while True:
            try:
                self.sock.recv(64)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is None:
            return
        sock.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
