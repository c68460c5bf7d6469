"""A fake `spidev`: an SPI bus that records what is written and can fail writes."""
from __future__ import annotations

buses: list["SpiDev"] = []


class SpiDev:
    def __init__(self):
        self.opened = None
        self.closed = False
        self.max_speed_hz = 0
        self.mode = 0
        self.written: list[list[int]] = []
        self.fail = False
        buses.append(self)

    def open(self, port: int, device: int) -> None:
        self.opened = (port, device)

    def writebytes(self, data) -> None:
        if self.fail:
            raise OSError(121, "Remote I/O error")
        self.written.append(list(data))

    writebytes2 = writebytes

    def close(self) -> None:
        self.closed = True
