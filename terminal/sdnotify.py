"""systemd's notify protocol (sd_notify): readiness, watchdog pings and status text.

A dozen lines of our own instead of a dependency: one datagram to $NOTIFY_SOCKET. Outside
systemd (no socket) every call does nothing, so services and the simulator share code.
"""
from __future__ import annotations

import os
import socket


class Notifier:
    def __init__(self, environ=None):
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):  # abstract namespace
            address = "\0" + address[1:]
        self.address = address
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        watched = usec.isdigit() and (not pid or pid == str(os.getpid()))
        # ping at half the period systemd allows, as sd_watchdog_enabled(3) advises
        self.watchdog_interval_s = int(usec) / 2e6 if watched else None

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def send(self, *fields: str) -> bool:
        if not self.address:
            return False
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            try:
                sock.sendto("\n".join(fields).encode("utf-8"), self.address)
            except OSError:
                return False
        return True

    def ready(self, status: str = "") -> bool:
        return self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={text}")

    def extend_timeout(self, seconds: float, status: str = "") -> bool:
        """Still starting (or stopping): allow `seconds` more from now. Only ever extends
        TimeoutStartSec=, never shortens it."""
        return self.send(f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}",
                         *([f"STATUS={status}"] if status else []))

    def stopping(self) -> bool:
        return self.send("STOPPING=1")
