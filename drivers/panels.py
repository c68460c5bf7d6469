"""luma device classes that send the panel only what changed since the last frame.

A 128x64 mono frame is 1 KiB: about 23 ms on a 400 kHz I2C bus and 92 ms at the Pi's
default 100 kHz. A tick on the reason screen changes a few bytes of it, so the panel gets
just those: the pages (8-pixel rows) that changed, each trimmed to its changed columns,
and split where a stretch of unchanged columns costs more than starting again after it
(a cursor move changes the pointer at the left edge and the position at the right one).

- SSD1306 (and SSD1309, same commands): horizontal addressing mode, which luma's init
  sets (0x20 0x00). A window is set with 0x21 first,last column and 0x22 first,last
  page; the data then fills it page by page. The changed columns fall into bands (split
  by unchanged stretches wider than a window's cost); in each band neighbouring changed
  pages share a window when that sends fewer bytes than a window each.
- SH1106: page addressing only. Per changed run of a page: 0xB0+page, then the start
  column as low nibble (0x00-0x0F) and high nibble (0x10-0x1F), then the data; the
  column counts up by itself. Its RAM is 132 columns wide and luma shows columns 2..129
  on a 128-wide panel (`page_address_offset`, default 2): the same offset is added here.
- SSD1322/SSD1325 (greyscale): luma's own `diff_to_previous` framebuffer already sends
  only changed segments; `GREYSCALE_SEGMENTS` sets how finely it looks. luma packs each
  segment's pixels into nibbles in a Python loop (0.7 ms of a page turn's 3.4 ms of CPU
  on a 256x64 panel, make bench: panel); `greyscale_nibbles` packs the same bytes with
  Pillow, and `FastSSD1322`/`FastSSD1325` use it.

What was sent is remembered only once the write went through: after an I/O error the
next frame is compared with what the panel really holds (a panel that lost power is
built again by drivers/display.py, with a fresh memory, and so gets a whole frame).
"""
from __future__ import annotations

from PIL import Image, ImageMath

from luma.core.framebuffer import diff_to_previous
from luma.oled.device import sh1106, ssd1306, ssd1309, ssd1322, ssd1325

__all__ = ["PartialSSD1306", "PartialSSD1309", "PartialSH1106", "FastGreyscale",
           "FastSSD1322", "FastSSD1325", "device_class", "GREYSCALE_SEGMENTS", "pages_of",
           "changed_runs", "bands", "windows", "greyscale_nibbles"]

# 16 segments (4x4) on a 256x64 panel: 64x16-pixel cells; a cursor move touches two or
# three of them instead of a quarter of the screen each (64 segments sent 13 % fewer
# bytes on a page turn but took 6 ms more to compare)
GREYSCALE_SEGMENTS = 16
# what starting one more window costs, in bytes on the bus: the SSD1306 window commands
# (6 bytes) and a second transaction (its address and control byte)
WINDOW_COST = 8
# and one more run on an SH1106: page and column commands (3 bytes), and the address and
# control bytes of the command's transaction and of the data's
RUN_COST = 7


def pages_of(image: Image.Image, pages: int) -> list[bytes]:
    """A mono image as the panel's memory holds it: per page (8 rows), one byte per
    column, the top row in bit 0. Done by Pillow: flipped upside down and transposed,
    each of its rows is one column, MSB first from the bottom page to the top one."""
    packed = image.transpose(Image.Transpose.FLIP_TOP_BOTTOM).transpose(
        Image.Transpose.TRANSPOSE).tobytes()
    return [packed[pages - 1 - page::pages] for page in range(pages)]


def changed_runs(old: bytes | None, new: bytes, gap: int) -> list[tuple[int, int]]:
    """(first, last) column of each run of changed bytes in a page; runs fewer than `gap`
    unchanged columns apart are one (resending those is cheaper than starting again).
    All of the page when there is nothing to compare with."""
    if old is None:
        return [(0, len(new) - 1)]
    if old == new:
        return []
    runs: list[list[int]] = []
    for i in range(len(new)):
        if old[i] != new[i]:
            if runs and i - runs[-1][1] - 1 < gap:
                runs[-1][1] = i
            else:
                runs.append([i, i])
    return [(a, b) for a, b in runs]


def bands(runs_per_page, gap: int) -> list[tuple[int, int]]:
    """The column ranges that the runs of all pages fall into: runs that overlap, or are
    fewer than `gap` columns apart, share a band."""
    out: list[list[int]] = []
    for lo, hi in sorted(r for runs in runs_per_page for r in runs):
        if out and lo - out[-1][1] - 1 < gap:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return [(a, b) for a, b in out]


def windows(spans: list[tuple[int, int] | None]) -> list[tuple[int, int, int, int]]:
    """The cheapest set of (first page, last page, first column, last column) windows that
    covers the changed `spans` (one per page, None where nothing changed): neighbouring
    pages share a window when its extra bytes cost less than another window."""
    n = len(spans)
    best = [0] * (n + 1)  # best[i]: the cost of covering the pages before i
    choice: list[tuple | None] = [None] * (n + 1)
    for end in range(1, n + 1):
        best[end] = best[end - 1]
        if not spans[end - 1]:
            continue  # a window never ends on an unchanged page
        best[end] = 1 << 30
        lo, hi = 1 << 30, -1
        for start in range(end - 1, -1, -1):
            if not spans[start]:
                continue  # nor starts on one
            lo, hi = min(lo, spans[start][0]), max(hi, spans[start][1])
            cost = best[start] + WINDOW_COST + (end - start) * (hi - lo + 1)
            if cost < best[end]:
                best[end], choice[end] = cost, (start, lo, hi)
    out, end = [], n
    while end > 0:
        if choice[end] is None:
            end -= 1
            continue
        start, lo, hi = choice[end]
        out.append((start, end - 1, lo, hi))
        end = start
    return out[::-1]


class _PagedPanel:
    """The memory of what the panel shows, page by page, for the mono classes below."""

    _sent: list | None = None
    _gap = WINDOW_COST

    def display(self, image: Image.Image) -> None:
        assert image.mode == self.mode
        assert image.size == self.size
        image = self.preprocess(image)
        new = pages_of(image, self._pages)
        sent = self._sent or [None] * self._pages
        runs = [changed_runs(sent[p], new[p], self._gap) for p in range(self._pages)]
        self._send(new, runs, sent)

    def _send(self, new, runs, sent) -> None:
        raise NotImplementedError


class PartialSSD1306(_PagedPanel, ssd1306):
    """luma's ssd1306, sending only the changed windows of the frame."""

    def _send(self, new, runs, sent) -> None:
        if self._sent is None:  # the first frame (luma's clear at start): all of it
            runs = [[(0, self._w - 1)]] * self._pages
        for band_lo, band_hi in bands(runs, WINDOW_COST):
            spans = []
            for page_runs in runs:
                inside = [r for r in page_runs if band_lo <= r[0] and r[1] <= band_hi]
                spans.append((inside[0][0], inside[-1][1]) if inside else None)
            for first, last, lo, hi in windows(spans):
                self.command(self._const.COLUMNADDR, self._colstart + lo, self._colstart + hi,
                             self._const.PAGEADDR, first, last)
                self.data(list(b"".join(new[p][lo:hi + 1] for p in range(first, last + 1))))
                for p in range(first, last + 1):   # what the panel holds now, column by column
                    held = bytearray(sent[p] if sent[p] is not None else new[p])
                    held[lo:hi + 1] = new[p][lo:hi + 1]
                    sent[p] = bytes(held)
                self._sent = sent


class PartialSSD1309(PartialSSD1306, ssd1309):
    """ssd1309: the SSD1306 commands, another init sequence."""


class PartialSH1106(_PagedPanel, sh1106):
    """luma's sh1106, sending only the changed runs of each changed page."""

    _gap = RUN_COST

    def _send(self, new, runs, sent) -> None:
        if self._sent is None:
            runs = [[(0, self._w - 1)]] * self._pages
        for page, page_runs in enumerate(runs):
            for lo, hi in page_runs:
                column = self._page_address_offset + lo
                self.command(0xB0 + page, column & 0x0F, 0x10 | column >> 4)
                self.data(list(new[page][lo:hi + 1]))
                held = bytearray(sent[page] if sent[page] is not None else new[page])
                held[lo:hi + 1] = new[page][lo:hi + 1]
                sent[page] = bytes(held)
                self._sent = sent


# two 4-bit pixels per byte the other way round: the first in the low nibble
_SWAP_NIBBLES = bytes(((b & 0x0F) << 4) | (b >> 4) for b in range(256))


def greyscale_nibbles(segment: Image.Image, nibble_order: int) -> bytes:
    """The bytes luma's greyscale_device sends for an image segment ("1" or "RGB", an
    even width): 4-bit grey per pixel by luma's own formula, (r*306 + g*601 + b*117) >> 14,
    15 for a lit mono pixel; the first of two pixels in the high nibble, or with
    `nibble_order` 1 in the low one."""
    if segment.mode == "1":
        grey = segment.convert("L").point(lambda v: 15 if v else 0)
    else:
        r, g, b = segment.convert("RGB").split()
        grey = ImageMath.lambda_eval(lambda c: (c["r"] * 306 + c["g"] * 601 + c["b"] * 117) >> 14,
                                     r=r, g=g, b=b).convert("L")
    packed = Image.frombytes("P", grey.size, grey.tobytes()).tobytes("raw", "P;4")
    return packed.translate(_SWAP_NIBBLES) if nibble_order else packed


class FastGreyscale:
    """luma's greyscale_device.display, each changed segment packed by Pillow."""

    def display(self, image: Image.Image) -> None:
        assert image.mode == self.mode
        assert image.size == self.size
        image = self.preprocess(image)
        for _, box in self.framebuffer.redraw(image):
            left, top, right, bottom = self._inflate_bbox(box)
            self._set_position(top, right, bottom, left)
            self.data(list(greyscale_nibbles(image.crop((left, top, right, bottom)),
                                             self._nibble_order)))


class FastSSD1322(FastGreyscale, ssd1322):
    pass


class FastSSD1325(FastGreyscale, ssd1325):
    pass


_PARTIAL = {"ssd1306": PartialSSD1306, "ssd1309": PartialSSD1309, "sh1106": PartialSH1106}
_GREYSCALE = {"ssd1322": FastSSD1322, "ssd1325": FastSSD1325}


def device_class(driver: str):
    """(luma device class, extra constructor arguments) for a panel driver name."""
    if driver in _PARTIAL:
        return _PARTIAL[driver], {}
    if driver in _GREYSCALE:
        cls = _GREYSCALE[driver]
    else:
        import luma.oled.device as oled
        cls = getattr(oled, driver)
    return cls, {"framebuffer": diff_to_previous(num_segments=GREYSCALE_SEGMENTS)}
