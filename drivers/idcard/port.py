"""The reader's serial port: opening it, changing its rate, probing for the reader's rate.

Protocol facts (rates, the status command used to probe) are in docs/idcard-protocol.md
§1 and §8.2-4; what the session says over the port is in session.py.
"""
from __future__ import annotations

import errno
from typing import Callable, List, Optional, Sequence, Tuple

import serial

from .frames import PortError, ReaderDisconnected, ReaderTimeout, Response

# The default rate first, then downwards (docs/idcard-protocol.md §8.2-4).
PROBE_ORDER = (115200, 57600, 38400, 19200, 9600)
READ_SLICE = 0.05  # serial read timeout: how often a wait loop checks its deadline
IO_ERRORS: tuple = (serial.SerialException, OSError)
try:  # termios.error is what tcflush raises on a hung-up tty
    import termios

    IO_ERRORS += (termios.error,)
except ImportError:  # pragma: no cover - not a POSIX system
    pass


def port_error(port: str, exc: Exception) -> PortError:
    """The PortError for a failed open, its message saying what to fix."""
    code = getattr(exc, "errno", None)
    text = str(exc)
    if code == errno.ENOENT or "No such file" in text:
        msg = (f"reader port {port} not found: check the cable and the name "
               f"(prefer a stable /dev/serial/by-id/... path)")
    elif code == errno.EPERM or "Operation not permitted" in text:
        # not the file's permissions (that is EACCES): the device cgroup refused it
        msg = (f"operation not permitted on {port}: the service's device list (systemd "
               "DeviceAllow=) refused it, usually because the USB-serial driver was not "
               "loaded when the service started; the dialout group does not help here: "
               "sudo systemctl restart pingjia-terminal (the shipped unit loads usbserial "
               "and cdc_acm before it starts; pingjia doctor checks the modules)")
    elif code == errno.EACCES or "Permission denied" in text:
        msg = (f"permission denied on {port}: add the user to the dialout group "
               f"(sudo usermod -aG dialout $USER, then log in again)")
    elif code in (errno.EBUSY, errno.EAGAIN) or "exclusively lock" in text:
        msg = f"{port} is in use by another process (only one program may open the reader)"
    else:
        msg = f"cannot open {port}: {exc}"
    return PortError(msg)


def rates_to_try(requested: Optional[int], last: Optional[int], probe_bauds: Sequence[int]) -> List[int]:
    """The rates to open the port at, in order: the requested one only, if any."""
    if requested is not None:
        return [requested]
    # The last rate that worked first: a replugged reader comes back at it, and this
    # keeps reconnection well under the probe's worst case.
    return [b for b in (last,) if b] + [b for b in probe_bauds if b != last]


class SerialPort:
    """One reader's serial port, opened exclusively; not thread-safe (the session locks).

    serial_factory is called as factory(path, baudrate=, timeout=, write_timeout=,
    exclusive=True); tests inject one.
    """

    def __init__(self, path: str, serial_factory: Callable[..., serial.SerialBase]) -> None:
        self.path = path
        self._factory = serial_factory
        self._serial: Optional[serial.SerialBase] = None

    @property
    def is_open(self) -> bool:
        return self._serial is not None

    def device(self) -> serial.SerialBase:
        """The open pyserial port (raises ReaderDisconnected when closed)."""
        if self._serial is None:
            raise ReaderDisconnected(f"{self.path} is not open")
        return self._serial

    def open(self, baud: int) -> None:
        try:
            ser = self._factory(self.path, baudrate=baud, timeout=READ_SLICE,
                                write_timeout=1.0, exclusive=True)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise port_error(self.path, exc) from exc
        self._serial = ser

    def set_rate(self, baud: int) -> None:
        ser = self.device()
        try:
            ser.baudrate = baud
        except IO_ERRORS as exc:
            raise ReaderDisconnected(f"lost the reader on {self.path}: {exc}") from exc

    def close(self) -> None:
        """Close the port; safe to call twice."""
        ser, self._serial = self._serial, None
        if ser is not None:
            try:
                ser.close()
            except IO_ERRORS:
                pass  # the device is already gone; nothing left to release

    def probe(self, rates: Sequence[int], probe_timeout: float,
              ask_status: Callable[[Optional[float]], Response]) -> Tuple[int, Response]:
        """Open the port and find the first of `rates` the reader answers at.

        ask_status(timeout) sends the SAM status command and returns its answer (None:
        the command's own timeout, used when there is only one rate to try). Returns the
        rate and that answer, the port left open at it; on any failure the port is closed.
        """
        self.open(rates[0])
        try:
            for i, rate in enumerate(rates):
                if i:
                    self.set_rate(rate)
                try:
                    return rate, ask_status(probe_timeout if len(rates) > 1 else None)
                except ReaderTimeout:
                    continue
            raise ReaderTimeout(f"no ID-card reader answered on {self.path} at "
                                f"{', '.join(map(str, rates))} baud")
        except BaseException:
            self.close()
            raise
