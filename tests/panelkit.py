"""A recording bus for luma devices, and panels that decode what it recorded.

`RecordingSerial` stands where luma's i2c/spi interface would (command()/data()/
cleanup()); it keeps every write as one transaction, as the real interfaces send them
(one I2C write per command() call, data() in transactions of up to 4096 bytes with
smbus2's i2c_rdwr). `SSD1306RAM`, `SH1106RAM` and `SSD1322RAM` replay the recorded
commands and data into a model of the controller's display memory, so a test can read
back what the glass would show.
"""
from __future__ import annotations

from PIL import Image

I2C_BLOCK = 4096  # luma's i2c.data() with smbus2: one i2c_rdwr message per 4096 bytes


class RecordingSerial:
    """A luma serial interface that records every write and fails them while `fail` is
    set, as an I2C bus does when the panel has no power (no ACK: OSError 121)."""

    def __init__(self, fail=False):
        self.fail = fail
        self.writes: list[tuple[str, list[int]]] = []
        self.cleaned = False

    def _write(self, kind, values):
        if self.fail:
            raise OSError(121, "Remote I/O error")
        self.writes.append((kind, list(values)))

    def command(self, *cmd):
        self._write("command", cmd)

    def data(self, data):
        data = list(data)
        for i in range(0, len(data), I2C_BLOCK):
            self._write("data", data[i:i + I2C_BLOCK])

    def cleanup(self):
        self.cleaned = True

    def commands(self):
        return [w for kind, values in self.writes if kind == "command" for w in values]

    def take(self) -> list[tuple[str, list[int]]]:
        """The writes since the last take (and forget them)."""
        out, self.writes = self.writes, []
        return out


# SSD1306 and SH1106 commands that take argument bytes in the same command() call
_ONE_ARG = {0x81, 0x8D, 0xA8, 0xD3, 0xD5, 0xD9, 0xDA, 0xDB, 0xAD}


class _MonoRAM:
    """Replays recorded writes: command() calls to `_commands`, data bytes to `_write`."""

    def feed(self, writes) -> None:
        for kind, values in writes:
            if kind == "command":
                self._commands(list(values))
            else:
                for byte in values:
                    self._write(byte)


class SSD1306RAM(_MonoRAM):
    """SSD1306 display memory: 128 columns x 8 pages, horizontal addressing mode."""

    def __init__(self, width=128, pages=8, colstart=0):
        self.width, self.pages, self.colstart = width, pages, colstart
        self.ram = [[0] * 128 for _ in range(pages)]
        self.window = (0, 127, 0, pages - 1)
        self.col, self.page = 0, 0
        self.mode = 2  # page addressing until the init sets 0x20 0x00

    def _commands(self, cmd):
        i = 0
        while i < len(cmd):
            c = cmd[i]
            if c == 0x20:
                self.mode, i = cmd[i + 1], i + 2
            elif c == 0x21:
                self.window = (cmd[i + 1], cmd[i + 2]) + self.window[2:]
                self.col, i = cmd[i + 1], i + 3
            elif c == 0x22:
                self.window = self.window[:2] + (cmd[i + 1], cmd[i + 2])
                self.page, i = cmd[i + 1], i + 3
            elif c in _ONE_ARG:
                i += 2
            else:
                i += 1

    def _write(self, byte):
        assert self.mode == 0, "the data came before horizontal addressing was set"
        self.ram[self.page][self.col] = byte
        c0, c1, p0, p1 = self.window
        self.col += 1
        if self.col > c1:
            self.col = c0
            self.page = p0 if self.page >= p1 else self.page + 1

    def image(self) -> Image.Image:
        return _mono(self.ram, self.colstart, self.width, self.pages)


class SH1106RAM(_MonoRAM):
    """SH1106 display memory: 132 columns x 8 pages, page addressing; the panel shows
    columns offset..offset+width-1."""

    def __init__(self, width=128, pages=8, offset=2):
        self.width, self.pages, self.offset = width, pages, offset
        self.ram = [[0] * 132 for _ in range(pages)]
        self.col, self.page = 0, 0

    def _write(self, byte):
        if self.col < 132:
            self.ram[self.page][self.col] = byte
        self.col += 1

    def _commands(self, cmd):
        i = 0
        while i < len(cmd):
            c = cmd[i]
            if 0xB0 <= c <= 0xB7:
                self.page = c - 0xB0
            elif c <= 0x0F:
                self.col = (self.col & 0xF0) | c
            elif 0x10 <= c <= 0x1F:
                self.col = (self.col & 0x0F) | (c & 0x0F) << 4
            elif c in _ONE_ARG:
                i += 1
            i += 1

    def image(self) -> Image.Image:
        return _mono(self.ram, self.offset, self.width, self.pages)


def _mono(ram, first, width, pages) -> Image.Image:
    img = Image.new("1", (width, pages * 8))
    px = img.load()
    for page in range(pages):
        for x in range(width):
            byte = ram[page][first + x]
            for bit in range(8):
                px[x, page * 8 + bit] = 255 if byte >> bit & 1 else 0
    return img


class SSD1322RAM:
    """SSD1322 display memory (480 x 128 pixels, 4 bits each, two to a byte), as luma
    drives it over SPI: a command byte, its arguments as data; 0x15 column range (in
    units of 4 pixels), 0x75 row range, 0x5C then pixel data row by row."""

    def __init__(self, width=256, height=64):
        self.width, self.height = width, height
        self.offset = (480 - width) // 2
        self.ram = [[0] * 480 for _ in range(128)]
        self.current, self.args = None, []
        self.cols, self.rows = (0, 119), (0, 127)
        self.x = self.y = 0

    def feed(self, writes) -> None:
        for kind, values in writes:
            if kind == "command":
                for c in values:
                    self.current, self.args = c, []
            else:
                for byte in values:
                    self._data(byte)

    def _data(self, byte):
        if self.current == 0x5C:
            self.ram[self.y][self.x] = byte >> 4
            self.ram[self.y][self.x + 1] = byte & 0x0F
            self.x += 2
            if self.x > self.cols[1] * 4 + 3:
                self.x = self.cols[0] * 4
                self.y = self.rows[0] if self.y >= self.rows[1] else self.y + 1
            return
        self.args.append(byte)
        if self.current == 0x15 and len(self.args) == 2:
            self.cols = tuple(self.args)
            self.x = self.args[0] * 4
        elif self.current == 0x75 and len(self.args) == 2:
            self.rows = tuple(self.args)
            self.y = self.args[0]

    def image(self) -> Image.Image:
        """The panel as 4-bit grey levels (0..15) in an "L" image."""
        img = Image.new("L", (self.width, self.height))
        img.putdata([self.ram[y][self.offset + x] for y in range(self.height)
                     for x in range(self.width)])
        return img


def grey4(image: Image.Image) -> Image.Image:
    """What an RGB frame becomes on the SSD1322: luma's 4-bit grey of each pixel."""
    rgb = image.convert("RGB")
    img = Image.new("L", rgb.size)
    raw = rgb.tobytes()
    img.putdata([(raw[i] * 306 + raw[i + 1] * 601 + raw[i + 2] * 117) >> 14
                 for i in range(0, len(raw), 3)])
    return img
